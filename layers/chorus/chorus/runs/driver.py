"""Drives one group run in this process: manager → agent turns → commits → finish.

The driver is where the pure engine meets I/O. It holds the run (`RunHolder`: status, the
lease, a heartbeat; losing the lease stops the driver before it writes again), opens it
(`opening`: history, committed progress), asks the manager for each round and runs the
round's turns through a `TurnRunner` into the run's `StepWriter` (parallel calls through
`OrderedLanes`), and always ends the run with a terminal status, a `stop_reason` and
`[DONE]` (invariant 3; `RunFinisher`).

It is re-entrant: a run whose worker died is driven again from its last committed step (the
committed steps are the manager's progress), with a new incarnation number so re-executed
messages get fresh ids, after an `abandoned` marker naming what the dead worker had streamed
of its unfinished step. Cancellation is prompt (invariant 4): the run's work is raced against
its cancel event, so a step waiting on a model, a tool's process, a fan-out worker or an
approved tool is cancelled the moment the event is set (a tool's process group is killed with
its task); a step's commit is never cut in half, and a cancelled or failed step's partial
output was streamed but is never committed to history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from chorus import tracing
from chorus.engine.context import group_system_prompt
from chorus.engine.managers import AgentCall, EndRun, RunAgents, RunProgress, TurnRecord, manager_for
from chorus.errors import ModelError
from chorus.llm.base import Model
from chorus.runs import opening
from chorus.runs.background import Spawn, start_background, unprocessed
from chorus.runs.finisher import RunFinisher, Tally, error_type_of
from chorus.runs.holding import RunHolder
from chorus.runs.lanes import OrderedLanes
from chorus.runs.lease import Lease, LeaseLost, RunCancelled, until_cancelled
from chorus.runs.loading import LoadedRun
from chorus.runs.log import RunLog
from chorus.runs.memory import AgentMemory
from chorus.runs.options import RunOptions
from chorus.runs.progress import CommittedProgress
from chorus.runs.steps import Slot, StepSink
from chorus.runs.tool_calls import Answers
from chorus.runs.toolbox import NO_EXECUTOR, NO_MCP_EXECUTOR, Toolbox
from chorus.runs.turn_runner import Resume, TurnRunner, TurnSettings
from chorus.runs.writer import StepWriter
from chorus.store.base import Store
from chorus.store.records import AgentRecord, RunRecord
from chorus.tools.execution import ToolExecutor
from chorus.tracing import tracer
from chorus.vocabulary import RunFailure

logger = logging.getLogger(__name__)

ModelResolver = Callable[[AgentRecord], Model]


class RunDriver:
    def __init__(
        self,
        store: Store,
        resolve: ModelResolver,
        loaded: LoadedRun,
        log: RunLog,
        *,
        lease: Lease,
        retention_s: float = 10_800,
        fanout_concurrency: int = 50,
        spawn: Spawn | None = None,
        tool_timeout_s: float = 30.0,
        tool_executor: ToolExecutor = NO_EXECUTOR,
        mcp_executor: ToolExecutor = NO_MCP_EXECUTOR,
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.loaded = loaded
        self.log = log
        self.retention_s = retention_s
        self.fanout_concurrency = fanout_concurrency
        self.tool_timeout_s = tool_timeout_s
        self.tool_executor = tool_executor
        self.mcp_executor = mcp_executor
        self.spawn = spawn
        self.started_ns = time.perf_counter_ns()
        self.holder = RunHolder(store, loaded, lease)
        self.writer = StepWriter(store, log, self.holder, self.started_ns)
        """The run's own sink: its log and its history."""
        self.children: list[str] = []
        """Background runs this run started (sleeptime agents), announced in `run_ids`."""

    @property
    def run(self) -> RunRecord:
        return self.loaded.run

    @property
    def progress(self) -> CommittedProgress:
        return self.writer.progress

    async def execute(self, *, fresh: bool = False) -> None:
        """Run to a terminal state. Never raises for failures of the run itself. A `fresh` run
        (one no worker started before) has no progress to restore."""
        stop, error = "end_turn", None
        try:
            async with self.holder.holding():
                await self.open(fresh=fresh)
                stop = await until_cancelled(self._loop(), self.loaded.cancel, self.holder.check_cancel)
        except LeaseLost:
            logger.warning("run %s: lease lost to another worker; stopping without writing", self.run.id)
            self.holder.lost = True
        except RunCancelled:
            stop = "cancelled"
        except Exception as exc:
            stop, error = self.failure(exc)
        if self.holder.lost:
            await self.log.abort()
            return
        await self.finish(stop, error)

    def failure(self, exc: Exception) -> tuple[str, RunFailure]:
        """The stop reason and error event of a run stopped by `exc`."""
        if isinstance(exc, ModelError):
            return exc.stop_reason, RunFailure(
                error_type_of(exc), f"The model failed: {exc.detail}", type(exc).__name__
            )
        logger.error("run %s failed", self.run.id, exc_info=exc)
        return "error", RunFailure("internal_error", "An internal error stopped the run.", type(exc).__name__)

    async def open(self, *, inputs: bool = True, mark_abandoned: bool = True, fresh: bool = False) -> None:
        """Load the conversation and the run's progress (and commit its inputs, once)."""
        await opening.load_history(self.writer)
        if not fresh or RunOptions.of(self.run).continues is not None:
            await opening.restore_progress(self.writer)
            if mark_abandoned:
                await self.mark_abandoned()
        if inputs and not self.writer.inputs_committed:
            await self.writer.commit_inputs()

    async def restore(self) -> None:
        """Rebuild progress again from the store (after other workers committed steps)."""
        await opening.restore_progress(self.writer)

    async def mark_abandoned(self) -> None:
        """See `opening.mark_abandoned`."""
        await opening.mark_abandoned(self.writer)

    async def _loop(self) -> str:
        runner = self.runner()
        while True:
            self.holder.check_cancel()
            decision = self.decide()
            if isinstance(decision, EndRun):
                await self.start_children(decision)
                return decision.stop_reason
            with tracer().span(
                *tracing.round_span(self.run, self.progress.rounds + 1, decision.calls), parent=self.run.traceparent
            ):
                turns = await self._round(runner, self.progress.rounds + 1, decision.calls)
            self.finished_round(turns)

    def finished_round(self, turns: list[TurnRecord]) -> None:
        """The round's turns, all run: the progress the store would restore, kept without reading it."""
        self.progress.turns.extend(turns)
        self.progress.rounds += 1
        self.progress.partial = {}

    def decide(self) -> EndRun | RunAgents:
        """The manager's next decision: pure, so every worker of the run decides the same."""
        view = self.loaded.view
        return manager_for(view.manager_type).next(view, self._manager_progress())

    async def start_children(self, decision: EndRun) -> None:
        group = self.loaded.group
        if group is not None and decision.background:
            self.children = await start_background(
                self.store, self.run, group, self.writer.history, decision, self.spawn
            )

    def _manager_progress(self) -> RunProgress:
        options = RunOptions.of(self.run)
        group = self.loaded.group
        return RunProgress(
            tuple(self.progress.turns),
            turn_number=options.turn_number,
            backlog=len(unprocessed(self.writer.history, group.last_processed_message_id if group else None)),
            max_steps=options.max_steps,
        )

    def runner(self) -> TurnRunner:
        group = self.loaded.group
        manager_agent_id = self.loaded.view.manager_agent_id

        def system_prompt(agent: AgentRecord) -> str:
            if group is None:
                return agent.system
            members = {*group.agent_ids, *([manager_agent_id] if manager_agent_id else [])}
            return group_system_prompt(agent.system, participants=len(members), description=group.description)

        config = self.run.request_config
        settings = TurnSettings(
            run_id=self.run.id,
            stream_tokens=self.loaded.stream_tokens,
            max_steps=RunOptions.of(self.run).max_steps,
            incarnation=self.run.incarnation,
            system_prompt=system_prompt,
            cancelled=self.holder.check_cancel,
            toolbox=Toolbox(
                self.store,
                self.run.tenant_id,
                AgentMemory(self.store, self.run.tenant_id, self.loaded.shared_block_ids),
                executor=self.tool_executor,
                mcp_executor=self.mcp_executor,
                timeout_s=self.tool_timeout_s,
            ),
            speech_tool=(
                str(config.get("assistant_message_tool_name") or "send_message"),
                str(config.get("assistant_message_tool_kwarg") or "message"),
            ),
            use_assistant_message=bool(config.get("use_assistant_message", True)),
        )
        return TurnRunner(settings, self.loaded.agents, self.resolve, self.loaded.cancel)

    async def _round(self, runner: TurnRunner, index: int, calls: tuple[AgentCall, ...]) -> list[TurnRecord]:
        """Run one decision's calls: one directly, several at once (bounded) in ordered lanes."""
        if len(calls) == 1:
            return [await self.run_call(runner, index, 0, calls, self.writer)]
        lanes = OrderedLanes(len(calls), self.writer)
        limit = asyncio.Semaphore(self.fanout_concurrency)

        async def one(i: int) -> TurnRecord:
            async with limit:
                record = await self.run_call(runner, index, i, calls, lanes.lanes[i])
            await lanes.finished(i)
            return record

        tasks = [asyncio.create_task(one(i), name=f"{self.run.id}-{index}-{i}") for i in range(len(calls))]
        try:
            return list(await asyncio.gather(*tasks))
        except BaseException:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def run_call(
        self, runner: TurnRunner, index: int, i: int, calls: tuple[AgentCall, ...], sink: StepSink
    ) -> TurnRecord:
        """Run call `i` of round `index` into `sink`, from where an earlier worker left it. In a
        parallel round a worker's model failure ends only its own turn (an error return)."""
        done = self.progress.finished_turn(i)
        if done is not None:
            return done
        slot = Slot(index, i, len(calls)) if len(calls) > 1 else Slot(index)
        steps = self.progress.partial.get(i)
        resume = Resume(len(steps), steps[-1].text) if steps else None
        slots, history = self.writer.slots, self.writer.history
        if index and all(s[0] != index for s in slots.values()):  # nothing of this round yet: all of it
            snapshot, own = list(history), []
        else:
            snapshot = [m for m in history if slots.get(m["id"], (0, 0))[0] != index]
            own = [m for m in history if slots.get(m["id"]) == (index, i)]
        if len(calls) == 1:
            return await runner.run(calls[0], slot, sink, snapshot + own, resume=resume, answers=self._answers(index))
        return await runner.run(calls[i], slot, sink, snapshot + own, resume=resume, tolerate_failure=True)

    def _answers(self, round_index: int) -> Answers | None:
        """The human's answers, for the round of the turn this run resumes."""
        options = RunOptions.of(self.run)
        paused = options.continues
        if paused is None or paused.round != round_index:
            return None
        return Answers(tuple(paused.tool_calls), tuple(options.approvals))

    async def finish(self, stop: str, error: RunFailure | None) -> None:
        """End the run (see `RunFinisher.finish`)."""
        self.loaded.run = await self._finisher().finish(self.run, stop, error, self._tally(), self._duration)

    def _finisher(self) -> RunFinisher:
        return RunFinisher(self.store, self.log, self.retention_s)

    def _tally(self) -> Tally:
        progress = self.progress
        return Tally(progress.usage, progress.step_count, tuple(self.children), self.writer.ttft_ns)

    def _duration(self) -> int:
        return time.perf_counter_ns() - self.started_ns
