"""The three tasks of a run's workflow, each a short life of the run's driver.

- **Plan** holds the run between rounds: it commits the run's inputs (once),
  copies the finished round's staged output into the run in plan order,
  asks the manager what comes next and returns it: the calls of the next
  round (for the Map), `finish` with a stop reason, or `continued` when the
  execution's history would outgrow its budget, after starting the run's
  next execution.
- **Step** runs one call of a round: the `live` call writes the run's log as
  it streams, every other call stages its output (see `staging`). Every
  Step re-derives the round from the store and checks it against its
  input, so a definition and handlers that disagree fail loudly.
- **Finish** ends the run exactly as the in-process driver does: stop
  reason, error or usage, `[DONE]`, terminal status, group released, and
  the group handed to the next background run waiting in its line. A
  Catch hands it the failed task's error.

Each task is safe to run again with the same input (Step Functions and
Lambda both retry): commits are keyed, stages written once, the log
appended only at its end, and a run already terminal is left alone.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from chorus.clock import ns_since
from chorus.engine.managers import EndRun, RunAgents, TurnRecord
from chorus.errors import ChorusError
from chorus.runs.driver import ModelResolver, RunDriver
from chorus.runs.finisher import RunFinisher, Tally
from chorus.runs.lease import Lease, RunCancelled, until_cancelled
from chorus.runs.loading import load_run
from chorus.runs.log import RunLog, logged_stop, run_log
from chorus.runs.multitask import DoubleTexting
from chorus.runs.progress import restore
from chorus.runs.toolbox import NO_EXECUTOR, NO_MCP_EXECUTOR
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import RunRecord
from chorus.tools.execution import ToolExecutor
from chorus.tools.executors import tool_executor_for
from chorus.tools.mcp_executor import McpToolExecutor
from chorus.tools.mcp_policy import policy_for
from chorus.vocabulary import RunFailure
from chorus.workflow import staging
from chorus.workflow.held_end import end_held
from chorus.workflow.state import StepInput, TaskError, WorkflowInput, WorkflowState, round_cost

logger = logging.getLogger(__name__)

StartExecution = Callable[[WorkflowInput], Awaitable[None]]
"""Starts an execution of the run workflow (a continuation, a run handed over to one)."""
StartRun = Callable[[RunRecord], Awaitable[None]]
"""Starts a new background run as the API does (a sleeptime agent's, a group's next in line)."""


@dataclass(frozen=True, slots=True)
class Planned:
    """What a Plan decided: its output for the definition, and the decision when it is a round."""

    out: dict[str, Any]
    decision: RunAgents | None = None


class WorkflowMismatch(ChorusError):
    """A task's input disagrees with the run in the store (a definition and handlers out of step)."""


def task_error(stop_reason: str, error_type: str, detail: str) -> str:
    """The message a failed task raises with: what Finish needs to end the run the same way."""
    return orjson.dumps({"stop_reason": stop_reason, "error_type": error_type, "detail": detail}).decode()


@dataclass(slots=True)
class Workflow:
    store: Store
    settings: Settings
    resolve: ModelResolver
    start_execution: StartExecution | None = None
    start_run: StartRun | None = None
    """Starts a new background run (a sleeptime agent's, a group's next in line) as the API starts
    one: an execution, or a direct Plan invocation (`CHORUS_WORKFLOW_START`)."""
    heartbeat_s: float = 1.0
    tool_executor: ToolExecutor | None = None
    """Runs the custom tools of every task; chosen from `settings` on first use unless given."""

    # Plan
    async def plan(self, raw: dict[str, Any]) -> dict[str, Any]:
        state = WorkflowState.model_validate(raw)
        run = await self.store.get_run(state.tenant_id, state.run_id)
        if run.is_terminal:
            return self.finishing(state, run.stop_reason or "end_turn")
        driver = await self.task_driver(run)
        try:
            async with driver.holder.holding():
                await self.open_plan(driver)
                return (await self.planned(state, driver)).out
        except RunCancelled:  # a commit refused: the run ended while this task ran
            return self.finishing(state, "cancelled")
        finally:
            await driver.log.stop()

    async def open_plan(self, driver: RunDriver, *, fresh: bool = False) -> None:
        """What a Plan reads and writes once per invocation: status `running`, the conversation,
        the committed progress (none to read for a `fresh` run), the run's inputs (committed once)."""
        await driver.holder.mark_running()
        await driver.open(mark_abandoned=False, fresh=fresh)

    async def planned(self, state: WorkflowState, driver: RunDriver) -> Planned:
        """The run's next action from what `driver` holds (opened by `open_plan`, kept current by its
        own commits since): publish a parallel round's stages, mark a dead attempt's output, decide."""
        decision = driver.decide()
        calls = len(decision.calls) if isinstance(decision, RunAgents) else 0
        if calls > 1 and await staging.publish(driver, driver.progress.rounds + 1, calls, 0):
            await driver.restore()
            decision = driver.decide()
        await driver.mark_abandoned()
        if driver.loaded.cancel.is_set() or driver.run.cancel_requested:
            return Planned(self.finishing(state, "cancelled"))
        if isinstance(decision, EndRun):
            await driver.start_children(decision)
            return Planned(self.finishing(state, decision.stop_reason, driver.children))
        return Planned(await self._next_round(state, driver, decision), decision)

    async def _next_round(self, state: WorkflowState, driver: RunDriver, decision: RunAgents) -> dict[str, Any]:
        cost = round_cost(len(decision.calls))
        if state.history_events and state.history_events + cost > state.history_budget:
            await self._continue(state)
            return state.model_copy(update={"action": "continued", "steps": []}).out()
        index = driver.progress.rounds + 1
        todo = [i for i in range(len(decision.calls)) if driver.progress.finished_turn(i) is None]
        steps = [
            StepInput(
                tenant_id=state.tenant_id,
                run_id=state.run_id,
                round=index,
                call=i,
                calls=len(decision.calls),
                live=i == todo[0],
                traceparent=state.traceparent,
            )
            for i in todo
        ]
        update = {
            "action": "steps",
            "round": index,
            "steps": steps,
            "history_events": state.history_events + cost,
            "max_concurrency": self.settings.fanout_concurrency,
        }
        return state.model_copy(update=update).out()

    async def _continue(self, state: WorkflowState) -> None:
        """Start the run's next execution (named after its generation: a retry finds it started)."""
        following = WorkflowInput(
            tenant_id=state.tenant_id,
            run_id=state.run_id,
            generation=state.generation + 1,
            history_budget=state.history_budget,
            traceparent=state.traceparent,
        )
        await self.start_execution_of(following)

    def finishing(self, state: WorkflowState, stop: str, children: list[str] | None = None) -> dict[str, Any]:
        update = {"action": "finish", "steps": [], "stop_reason": stop, "children": children or []}
        return state.model_copy(update=update).out()

    # Step
    async def step(self, raw: dict[str, Any]) -> dict[str, Any]:
        item = StepInput.model_validate(raw)
        outcome = {"call": item.call, "outcome": "done"}
        run = await self.store.get_run(item.tenant_id, item.run_id)
        if run.is_terminal:
            return {**outcome, "outcome": "skipped"}
        driver = await self.task_driver(run, runs_tools=True)
        try:
            async with driver.holder.holding():
                await driver.open(inputs=False, mark_abandoned=False)
                if item.live and driver.progress.finished_turn(item.call) is None:
                    # output after the last commit is this call's own dead attempt (once the call is
                    # finished, it can only be a copy of a later call's stage, which `publish` recognises)
                    await driver.mark_abandoned()
                if driver.progress.rounds >= item.round:
                    return {**outcome, "outcome": "skipped"}
                decision = driver.decide()
                if (
                    not isinstance(decision, RunAgents)
                    or driver.progress.rounds + 1 != item.round
                    or len(decision.calls) != item.calls
                ):
                    raise WorkflowMismatch(
                        f"run {run.id}: step {item.round}.{item.call} of {item.calls} calls is not the run's next round"
                    )
                # the heartbeat reads the stored cancel flag: a Step waiting on a model or a tool stops at once
                await until_cancelled(self.run_call(driver, item, decision), driver.loaded.cancel)
        except RunCancelled:
            return {**outcome, "outcome": "cancelled"}
        finally:
            await driver.log.stop()
        return outcome

    async def run_call(self, driver: RunDriver, item: StepInput, decision: RunAgents) -> TurnRecord | None:
        """Run the step's call: the live one into the run's log (then publish the stages after it),
        any other into its stage. The live call's turn is returned (a staged call's is the Plan's to read)."""
        runner = driver.runner()
        if item.live:
            record = await driver.run_call(runner, item.round, item.call, decision.calls, driver.writer)
            if item.calls > 1:
                await staging.publish(driver, item.round, item.calls, item.call + 1)
            return record
        log_id = staging.stage_id(driver.run.id, item.round, item.call)
        if (
            driver.progress.finished_turn(item.call)
            or await staging.load(self.store, item.tenant_id, log_id) is not None
        ):
            return None
        lane = staging.StagingLane()
        await driver.run_call(runner, item.round, item.call, decision.calls, lane)
        await staging.save(self.store, item.tenant_id, log_id, lane.ops)
        return None

    # Finish
    async def finish(self, raw: dict[str, Any], held: RunDriver | None = None) -> dict[str, Any]:
        """End the run; a Plan that ran its last round passes its driver (`held`), which ends it
        without reading it again unless the run changed meanwhile (`held_end`)."""
        state = WorkflowState.model_validate(raw)
        stop, error = state.stop_reason or "end_turn", None
        if state.error is not None:
            stop, error = failure_of(state.error)
        run = None
        if held is not None:
            run = await end_held(held, self.settings, stop, error, state.children)
        if run is None:
            run = await self.store.get_run(state.tenant_id, state.run_id)
            run = await finalize(self.store, self.settings, run, stop, error, state.children)
        await DoubleTexting(self.store, self.settings, self._spawn).advance(run.tenant_id, run.group_id)
        return {"run_id": run.id, "status": run.status, "stop_reason": run.stop_reason}

    async def task_driver(
        self, run: RunRecord, *, runs_tools: bool = False, lease: Lease | None = None, fresh: bool = False
    ) -> RunDriver:
        """A driver for one task; only a Step (or a Plan running turns inline) runs tools, so only its
        driver gets the executor (Finish never chooses one, nor logs why custom tools could not run).
        A task holds the run by `workflow_lease` unless given a real `lease` (a directly started Plan).
        A `fresh` run's log is known empty (its first attempt's), so its end is not read."""
        loaded = await load_run(self.store, run)
        base_seq = 0 if fresh else await self.store.last_seq(run.tenant_id, run.id)
        return RunDriver(
            self.store,
            self.resolve,
            loaded,
            run_log(self.store, self.settings, run, base_seq),
            lease=lease or workflow_lease(run, self.heartbeat_s),
            retention_s=self.settings.event_retention_s,
            fanout_concurrency=self.settings.fanout_concurrency,
            spawn=self._spawn,
            tool_timeout_s=self.settings.tool_timeout_s,
            tool_executor=self._tool_executor() if runs_tools else NO_EXECUTOR,
            mcp_executor=McpToolExecutor(policy_for(self.settings)) if runs_tools else NO_MCP_EXECUTOR,
        )

    def _tool_executor(self) -> ToolExecutor:
        if self.tool_executor is None:
            self.tool_executor = tool_executor_for(self.settings)
        return self.tool_executor

    async def _spawn(self, child: RunRecord) -> None:
        if self.start_run is None:
            raise ChorusError("this workflow cannot start runs (no state machine configured)")
        await self.start_run(child)

    async def start_execution_of(self, state: WorkflowInput) -> None:
        """Start an execution of the run workflow with `state` as its input (idempotent by its name)."""
        if self.start_execution is None:
            raise ChorusError("this workflow cannot start executions (no state machine configured)")
        await self.start_execution(state)


def workflow_lease(run: RunRecord, heartbeat_s: float = 1.0) -> Lease:
    """Tasks never take a lease (the workflow owns the run); their heartbeat only watches for cancel."""
    return Lease(owner=f"workflow:{run.id}", heartbeat_s=heartbeat_s, renew=False)


def failure_of(error: TaskError) -> tuple[str, RunFailure]:
    """Stop reason and error event of a run whose task failed with `error` (a Catch's `$.error`)."""
    message = ""
    try:
        message = str(orjson.loads(error.cause).get("errorMessage", ""))
        known = orjson.loads(message)
        return known["stop_reason"], RunFailure(known["error_type"], _message(known), error.error)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        detail = f"{error.error}: {message}" if message else error.error
        if error.error in WORKER_DEATHS:
            return "error", RunFailure("internal_error", _died(error.error), detail)
        return "error", RunFailure("internal_error", "An internal error stopped the run.", detail)


WORKER_DEATHS = frozenset({"Runtime.ExitError", "Sandbox.Timedout", "States.Timeout", "Lambda.Unknown"})
"""Errors of a task whose Lambda died or ran out of time (not an error the handler raised). The
definition retries a Step that dies this way twice (three attempts: `Settings.max_run_attempts`'
default), so one that reaches Finish with it killed every worker that attempted it."""


def _died(error: str) -> str:
    return (
        f"The run was stopped: the worker running its step stopped ({error}) on every attempt. "
        "It is not retried again, so that one run cannot keep taking the service down."
    )


def _message(known: dict[str, Any]) -> str:
    if known["error_type"] == "internal_error":
        return "An internal error stopped the run."
    return f"The model failed: {known['detail']}"


async def finalize(
    store: Store,
    settings: Settings,
    run: RunRecord,
    stop: str,
    error: RunFailure | None,
    children: list[str] | None = None,
) -> RunRecord:
    """End a run from outside any driver (the Finish task, a cancel after `StopExecution`, a
    sweep of dead executions). Idempotent: a terminal run is returned as it is, a log already
    complete only gets its run record's status from its logged stop reason."""
    run = await store.get_run(run.tenant_id, run.id)  # the caller's copy may be stale
    if run.is_terminal:
        return run
    last = await store.last_seq(run.tenant_id, run.id)
    restored = restore(await store.list_steps(run.tenant_id, run.id))
    tally = Tally(restored.usage, restored.step_count, tuple(children or ()))

    def log_after(seq: int) -> RunLog:
        return run_log(store, settings, run, seq)

    finisher = RunFinisher(store, log_after(last), settings.event_retention_s, reopen=log_after)
    duration_ns = ns_since(run.created_at)
    logged = await logged_stop(store, run.tenant_id, run.id)
    if logged is not None:  # a finisher that died after completing the log
        await finisher.log.abort()
        await finisher.finish_record(run, logged, tally, lambda: duration_ns)
    else:
        if run.cancel_requested and error is None:
            stop = "cancelled"
        await finisher.finish(run, stop, error, tally, lambda: duration_ns)
    return await store.get_run(run.tenant_id, run.id)
