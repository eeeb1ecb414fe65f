"""Inline turns: a Plan task that runs a run's sequential turns itself, and its Finish.

Every state a Standard execution enters is billed ($0.025 per 1,000), and a
round through the Map costs four (Plan, the Choice, the Map, its Step), so a
3-agent round robin took 16 transitions and 8 Lambda invocations. Most
rounds are one call (round robin, dynamic, sleeptime, a supervisor's own
turns); the Map only pays off for a parallel round. So the Plan task, while
its time budget lasts, runs each one-call round itself with the Step task's
own code (`Workflow.run_call`: the same live log, commits and cancel heartbeat),
plans again, and when the run is over runs Finish too: the execution is then
Plan, the Choice and Done (3 transitions, 1 invocation).

What stays with the definition: a parallel round goes to the Map; a turn
that fails with a retryable model error goes to the Map as it is, to be
retried with the Step's backoff (the Step marks this attempt's output
abandoned, as after any dead attempt); a turn started after the budget is
the Map's. Anything else a turn raises fails the Plan task as it would have
failed the Step: caught into Finish, or retried when the storage was
unavailable or the worker died (Plan retries those; a retried Plan re-reads
the run and goes on from its last commit).

One invocation reads the run once. The Plan opens one driver (run, group,
agents, the conversation, the committed steps, the log's end) and keeps it
for every round it runs: between its rounds nothing but this task writes the
run's history, steps and log (the group is the run's while it runs; the Map's
Steps only run once the Plan has returned), and its own commits keep the
driver current, as the in-process driver's do. What another writer may change
is still seen: a cancel or a run ended elsewhere through the heartbeat, which
stops the turn, and the store's fence, which refuses a commit to an ended
run. A new invocation (a retry, the Plan after a Map, a continuation) may
follow another worker, so it loads everything again. A Plan that runs the
run's last round ends the run from the same driver (`held_end`), conditioned
on the run being as the Plan last wrote it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from chorus.errors import ModelError
from chorus.runs.driver import RunDriver
from chorus.runs.lease import RunCancelled, until_cancelled
from chorus.workflow.state import StepInput, WorkflowState
from chorus.workflow.tasks import Planned, Workflow

logger = logging.getLogger(__name__)

DONE = "done"
"""The action of a Plan that also finished the run: the definition's Choice goes to Done."""


async def plan_inline(
    workflow: Workflow, raw: dict[str, Any], budget_s: float, clock: Callable[[], float] = time.monotonic
) -> dict[str, Any]:
    """Plan, then run one-call rounds and plan again while `budget_s` lasts; finish a finished run."""
    started = clock()
    state = WorkflowState.model_validate(raw)
    run = await workflow.store.get_run(state.tenant_id, state.run_id)
    driver: RunDriver | None = None
    if run.is_terminal:
        out = workflow.finishing(state, run.stop_reason or "end_turn")
    else:
        driver = await workflow.task_driver(run, runs_tools=True)
        try:
            async with driver.holder.holding():
                await workflow.open_plan(driver)
                out = await run_rounds(workflow, state, driver, lambda: clock() - started < budget_s)
        except RunCancelled:  # a commit refused: the run ended while this task ran
            out = workflow.finishing(state, "cancelled")
        finally:
            await driver.log.stop()
    if out["action"] == "finish":
        await workflow.finish(out, held=driver)
        return {**out, "action": DONE}
    return out


async def run_rounds(
    workflow: Workflow, state: WorkflowState, driver: RunDriver, in_budget: Callable[[], bool]
) -> dict[str, Any]:
    """Run the one-call rounds the run plans while in budget, on the one driver; the action after them.
    Planning again uses the input `state`: a round run here used none of the execution's history."""
    planned: Planned = await workflow.planned(state, driver)
    while planned.decision is not None and len(planned.out["steps"]) == 1 and in_budget():
        item = StepInput.model_validate(planned.out["steps"][0])
        try:
            # the heartbeat reads the stored cancel flag: a turn waiting on a model or a tool stops at once
            # (a leased Plan's heartbeat also sees a takeover: `check_cancel` raises `LeaseLost` then)
            work = workflow.run_call(driver, item, planned.decision)
            record = await until_cancelled(work, driver.loaded.cancel, driver.holder.check_cancel)
        except ModelError as exc:
            if not exc.retryable:
                raise
            logger.warning("run %s: a turn run inline failed (%s); the Map retries it", state.run_id, exc.detail)
            return planned.out
        except RunCancelled:
            return workflow.finishing(state, "cancelled")
        turns = [record if c == item.call else driver.progress.finished_turn(c) for c in range(item.calls)]
        if all(turns):
            driver.finished_round([t for t in turns if t is not None])
        else:  # not expected (the call was its round's last unfinished one): read what the store says
            await driver.restore()
        planned = await workflow.planned(state, driver)
    return planned.out
