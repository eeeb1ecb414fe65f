"""Direct start: a background run started by an async invocation of the Plan function, no execution.

With inline turns a round robin's execution is Plan, the Choice and Done: three state
transitions ($0.075 per 1,000 runs) to wrap one Lambda invocation that does all the work. So
the API may instead invoke the Plan function asynchronously (`CHORUS_WORKFLOW_START=invoke`),
with the execution's input plus `"direct": true`, and that Plan runs what an inline Plan runs:
it plans, runs the one-call rounds within its budget, and finishes the run.

Nothing owns the run but that invocation, and Lambda delivers an async event at least once
(a duplicate may even run at the same time) and retries a failed one twice, a minute and then
two later. So a direct Plan holds the run by the same lease as the in-process driver, renewed
by the heartbeat. The API creates the run held already, as it creates the foreground runs it
drives itself: `running`, its lease owned by a fresh `new_first_owner` that the event carries
too (`FIRST_OWNER`), so the first attempt need not rewrite the run item (five write units: it
is in four indexes) before its end. An attempt sent the run's owner claims the run's first
attempt (`Store.claim_first_attempt`, one tiny conditional put beside the run); the one that
wins drives the run under that owner (no attempt ran before it: nothing died, nothing to mark
abandoned). Every other attempt (a duplicate, Lambda's retry, an event whose owner is no
longer the run's) takes a fresh owner: one that finds the lease held by another live owner,
the run ended, or the run handed to an execution returns without writing (no error: Lambda
would retry one); one that takes the lease over from a dead attempt (only once its lease has
expired) bumps the run's incarnation, so the turn it runs again writes fresh message ids after
the `abandoned` marker, and counts the death (`deaths_before`).

Where an inline Plan hands something to the definition (a parallel round for the Map, a turn's
retryable model error for the Step's backoff, a round past the budget) the direct Plan *hands
the run over*: while it still holds the lease it marks the run `in_execution` and releases the
lease in one conditional write, then starts the run's execution, whose first Plan goes on from
the last commit like a retried Plan. From then on the run is an execution's, exactly as if it
had been started as one. A failure the definition would catch into Finish is finished here, with
the same code; anything else (the store unavailable, the worker dead) leaves as an error, and
Lambda's retry adopts the run from its last commit once this attempt's lease has expired.

The sweep (`StepFunctionsExecutor.reconcile`) hands over a direct run whose lease stayed expired
past Lambda's retries (`DIRECT_GRACE_S`), the lease it was created with if its Plan never came,
with the same conditional write: a late retry that took the lease meanwhile wins, and one that
comes after finds the run handed over.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from chorus.errors import Conflict, StorageUnavailable
from chorus.runs.attempts import RECOVERY, Deaths, deaths_after
from chorus.runs.driver import RunDriver
from chorus.runs.lease import Lease, LeaseLost, RunCancelled
from chorus.runs.options import RunOptions
from chorus.runs.recovery import end_poisoned
from chorus.store.base import Store
from chorus.store.records import RunRecord
from chorus.workflow.inline import DONE, run_rounds
from chorus.workflow.state import WorkflowInput, WorkflowState
from chorus.workflow.tasks import Workflow

logger = logging.getLogger(__name__)

DIRECT_GRACE_S = 300.0
"""How long a direct run's lease must have been expired (or, never taken, the run must be old)
before the sweep hands it over: past Lambda's retry delays (1 and 2 minutes, plus its jitter)
after an attempt died, so a pending retry, not an execution, goes on with the run."""

FIRST_OWNER = "first_owner"
"""The key of the invoke event holding the lease owner the API created the run held by."""
_FIRST_PREFIX = "direct-first-"
"""Only an owner issued for a first attempt (`new_first_owner`) is ever driven under from an event."""

HANDED_OVER = "handed_over"
HELD_ELSEWHERE = "held_elsewhere"
ENDED = "ended"


def new_first_owner() -> str:
    """The lease owner a direct run is created held by, sent with its invoke event."""
    return f"{_FIRST_PREFIX}{uuid.uuid4()}"


def handed_over(run: RunRecord) -> bool:
    return RunOptions.of(run).in_execution


def hand_over(run: RunRecord) -> RunRecord:
    """The run as handed to an execution: marked so, its lease released."""
    options = {**run.options, "in_execution": True}
    return run.model_copy(update={"options": options, "lease_owner": None, "lease_expires_at": 0.0})


def execution_input(state: WorkflowInput) -> WorkflowInput:
    """The execution a direct run is handed to: its first (a direct Plan used no history)."""
    return WorkflowInput(
        tenant_id=state.tenant_id,
        run_id=state.run_id,
        history_budget=state.history_budget,
        traceparent=state.traceparent,
    )


async def plan_direct(
    workflow: Workflow,
    raw: dict[str, Any],
    budget_s: float,
    caught: Callable[[Exception], Exception],
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Run a directly started run while it can go alone; finish it, or hand it to an execution.
    `caught` names a failure as the definition's Catch would see it (`handlers.classify`)."""
    started = clock()
    state = WorkflowState.model_validate(raw)
    run = await workflow.store.get_run(state.tenant_id, state.run_id)
    if run.is_terminal:
        return _outcome(state, ENDED)
    if handed_over(run):  # an earlier attempt handed it over: its execution may not have started
        await workflow.start_execution_of(execution_input(state))
        return _outcome(state, HANDED_OVER)
    lease = await _lease(workflow, run, raw)
    first = lease.owner == run.lease_owner  # no attempt ran before: nothing is logged or committed yet
    deaths = None if first else await deaths_before(workflow.store, run)
    if deaths is not None and deaths.count >= workflow.settings.max_run_attempts:
        last = await workflow.store.last_seq(run.tenant_id, run.id)
        ended = await end_poisoned(workflow.store, workflow.settings, run, last, deaths, lease)
        return _outcome(state, ENDED if ended else HELD_ELSEWHERE)
    driver = await workflow.task_driver(run, runs_tools=True, lease=lease, fresh=first)
    try:
        out = await _run(workflow, state, driver, lambda: clock() - started < budget_s, caught, deaths, first)
    except LeaseLost:
        out = None
    finally:
        await _stop_log(driver)
    if out is None or driver.holder.lost:
        logger.info("run %s is held elsewhere (another attempt, or its execution); leaving it", state.run_id)
        return _outcome(state, HELD_ELSEWHERE)
    if out["action"] == "finish":
        await workflow.finish(out, held=driver)
        return {**out, "action": DONE}
    return await _hand_over(workflow, state, driver)


async def _lease(workflow: Workflow, run: RunRecord, raw: dict[str, Any]) -> Lease:
    """The lease this attempt drives the run under: the one the API created the run held by, for
    the one attempt that claims the run's first attempt while the run is still held by it (no
    attempt ran before it: nothing died, nothing to mark abandoned); else a fresh owner's, which
    takes the run only as every attempt does (`_take`)."""
    attempt = f"direct-{uuid.uuid4()}"
    first = raw.get(FIRST_OWNER)
    issued = isinstance(first, str) and first.startswith(_FIRST_PREFIX) and first == run.lease_owner
    ttl_s, heartbeat_s = workflow.settings.lease_ttl_s, workflow.heartbeat_s
    if issued and await workflow.store.claim_first_attempt(run.tenant_id, run.id, attempt):
        logger.info("run %s: its first attempt drives it under the lease it was created with", run.id)
        return Lease(owner=str(first), ttl_s=ttl_s, heartbeat_s=heartbeat_s)
    return Lease(owner=attempt, ttl_s=ttl_s, heartbeat_s=heartbeat_s)


async def _run(
    workflow: Workflow,
    state: WorkflowState,
    driver: RunDriver,
    in_budget: Callable[[], bool],
    caught: Callable[[Exception], Exception],
    deaths: Deaths | None,
    first: bool,
) -> dict[str, Any]:
    """Take the lease and run the rounds an inline Plan runs; the action after them. A run created
    held by this attempt's lease, far from expiry, is not written before its end, and its `first`
    attempt does not look for steps or events no attempt could have written."""
    if not driver.holder.held_fresh():
        await driver.holder.update(lambda r: _take(r, driver.holder.lease, deaths))
    try:
        async with driver.holder.holding():
            await workflow.open_plan(driver, fresh=first)
            return await run_rounds(workflow, state, driver, in_budget)
    except RunCancelled:  # a commit refused: the run ended while this attempt ran
        return workflow.finishing(state, "cancelled")
    except (LeaseLost, StorageUnavailable):
        raise
    except Exception as exc:
        failure = caught(exc)
        if isinstance(failure, StorageUnavailable):
            raise
        # what the definition's Catch would hand Finish: the error's name and the Lambda's error payload
        cause = orjson.dumps({"errorMessage": str(failure), "errorType": type(failure).__name__}).decode()
        logger.warning("run %s: its direct Plan failed (%s); finishing it", state.run_id, type(exc).__name__)
        return {**workflow.finishing(state, "error"), "error": {"Error": type(failure).__name__, "Cause": cause}}


async def _stop_log(driver: RunDriver) -> None:
    """Write what the attempt emitted; a run ended meanwhile (cancelled) refuses it, as it should."""
    try:
        await driver.log.stop()
    except Conflict:
        if not driver.loaded.cancel.is_set():
            raise
        logger.info("run %s ended while its direct Plan ran; its last events were refused", driver.run.id)


async def deaths_before(store: Store, run: RunRecord) -> Deaths | None:
    """The attempts that died on the run's unfinished step, counting the one whose lease expired;
    None while nobody held the run, or its holder's lease is live. A step that kills every
    attempt (a tool that kills its sandbox's host) fails its run after `max_run_attempts`,
    counted across Lambda's retries and the sweep as the in-process recovery counts workers."""
    if run.lease_owner is None or run.lease_expires_at > time.time():
        return None
    return await deaths_after(store, run)


def _take(run: RunRecord, lease: Lease, deaths: Deaths | None) -> RunRecord:
    """Hold the run for this attempt: refused if it ended, was handed over, or another live owner
    holds it. Taken over from a dead attempt, the run gets a new incarnation (fresh message ids)
    and the count of attempts that died on its step."""
    if run.is_terminal or handed_over(run):
        raise LeaseLost
    if run.lease_owner not in (None, lease.owner) and run.lease_expires_at > time.time():
        raise LeaseLost
    held: dict[str, Any] = {"lease_owner": lease.owner, "lease_expires_at": time.time() + lease.ttl_s}
    if run.lease_owner not in (None, lease.owner):
        held["incarnation"] = run.incarnation + 1
        if deaths is not None:
            held["options"] = {**run.options, RECOVERY: deaths.as_option()}
    return run.model_copy(update={"status": "running", **held})


async def _hand_over(workflow: Workflow, state: WorkflowState, driver: RunDriver) -> dict[str, Any]:
    """Give the run to an execution: marked and released while this attempt still holds the lease
    (a conditional write), then started; a run that ended meanwhile is left as it is."""
    owner = driver.holder.lease.owner

    def release(run: RunRecord) -> RunRecord:
        if run.is_terminal:
            return run
        if run.lease_owner != owner:
            raise LeaseLost
        return hand_over(run)

    try:
        await driver.holder.update(release)
    except LeaseLost:
        return _outcome(state, HELD_ELSEWHERE)
    if driver.holder.run.is_terminal:
        return _outcome(state, ENDED)
    logger.info("run %s: handing it over to an execution", state.run_id)
    await workflow.start_execution_of(execution_input(state))
    return _outcome(state, HANDED_OVER)


def _outcome(state: WorkflowState, outcome: str) -> dict[str, Any]:
    return {"run_id": state.run_id, "outcome": outcome}
