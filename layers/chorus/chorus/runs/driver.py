"""Executes one group run in this process: manager → agent turns → commits → finish.

The driver is the only place where the pure engine meets I/O. It holds the
run's lease (a heartbeat renews it; losing it stops the driver before it
writes again), loads history, pumps each model stream through an
`AgentTurn`, emits events to the `RunLog`, makes the step's events durable,
then commits the step record and its messages once (keyed by run and step),
and always ends the run with a terminal status, a `stop_reason` and `[DONE]`
(invariant 3).

It is re-entrant: a run whose worker died is driven again from its last
committed step (the committed steps are the manager's progress), with a new
incarnation number so re-executed messages get fresh ids, after an
`abandoned` marker naming what the dead worker had streamed of its
unfinished step. Cancellation is prompt (invariant 4): the run's work is
raced against its cancel event, so a step waiting on a model, a tool's
process, a fan-out worker or an approved tool is cancelled the moment the
event is set (a tool's process group is killed with its task); a step's
commit is never cut in half, and a cancelled or failed step's partial output
was streamed but is never committed to history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from chorus.engine import events, identity
from chorus.engine.context import group_system_prompt
from chorus.engine.managers import (
    AgentCall,
    Finish,
    GroupView,
    RunAgents,
    RunProgress,
    TurnRecord,
    manager_for,
)
from chorus.errors import AlreadyCommitted, ChorusError, ModelError
from chorus.llm.base import Model, Usage
from chorus.runs.approvals import track_pending_approval
from chorus.runs.background import Spawn, start_background, unprocessed
from chorus.runs.finisher import RunFinisher, Tally, error_type_of, update_run
from chorus.runs.history import load_tail
from chorus.runs.lanes import DirectLane, Lane, OrderedLanes
from chorus.runs.lease import Lease, LeaseLost, RunCancelled, uncancellable, until_cancelled
from chorus.runs.log import RunLog
from chorus.runs.memory import AgentMemory
from chorus.runs.options import RunOptions
from chorus.runs.progress import restore, slot_of, step_records, turn_of, usage_dict
from chorus.runs.toolbox import NO_EXECUTOR, Toolbox
from chorus.runs.turn_runner import Answers, Resume, Slot, StepCommit, TurnRunner, TurnSettings
from chorus.schemas.requests import MessageCreate
from chorus.store.base import LOG_END, Store
from chorus.store.records import AgentRecord, GroupRecord, MessageRecord, RunRecord, StepRecord
from chorus.tools.execution import ToolExecutor
from chorus.vocabulary import RunFailure

logger = logging.getLogger(__name__)

ModelResolver = Callable[[AgentRecord], Model]


@dataclass(slots=True)
class RunPlan:
    """Everything a run needs, loaded and validated before the first byte is sent."""

    run: RunRecord
    group: GroupRecord | None
    """None for a run of one agent outside any group's history (a sleeptime agent's run)."""
    agents: dict[str, AgentRecord]
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    shared_block_ids: list[str] = field(default_factory=list)
    """Memory blocks every agent of the run shares: its group's (a sleeptime run: its parent group's)."""
    failure: ChorusError | None = None
    """Why the run failed, for a non-streaming response to answer with the right status."""

    @property
    def stream_tokens(self) -> bool:
        return RunOptions.of(self.run).stream_tokens

    @property
    def inputs(self) -> list[MessageCreate]:
        return [MessageCreate.model_validate(m) for m in self.run.inputs]

    @property
    def view(self) -> GroupView:
        names = {a.id: a.name for a in self.agents.values()}
        group = self.group
        if group is None:
            config = {"manager_type": "round_robin", "max_turns": 1}
            return GroupView("", "round_robin", (self.run.agent_id,), config, names)
        return GroupView(group.id, group.manager_type, tuple(group.agent_ids), dict(group.manager_config), names)


class RunDriver:
    def __init__(
        self,
        store: Store,
        resolve: ModelResolver,
        plan: RunPlan,
        log: RunLog,
        *,
        lease: Lease,
        retention_s: float = 10_800,
        fanout_concurrency: int = 50,
        spawn: Spawn | None = None,
        tool_timeout_s: float = 30.0,
        tool_executor: ToolExecutor = NO_EXECUTOR,
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.plan = plan
        self.log = log
        self.lease = lease
        self.retention_s = retention_s
        self.fanout_concurrency = fanout_concurrency
        self.tool_timeout_s = tool_timeout_s
        self.tool_executor = tool_executor
        self.spawn = spawn
        self.run = plan.run
        self.tenant = plan.run.tenant_id
        self.history: list[dict[str, Any]] = []
        self.slots: dict[str, tuple[int, int]] = {}
        """`(round, call)` of each history message this run wrote, to snapshot a round's context."""
        self.turns: list[TurnRecord] = []
        self.rounds = 0
        """Rounds (manager decisions) completed."""
        self.partial: dict[int, list[StepRecord]] = {}
        """Committed steps of the unfinished round, by call (a recovered run finishes that round)."""
        self.children: list[str] = []
        """Background runs this run started (sleeptime agents), announced in `run_ids`."""
        self.usage = Usage()
        self.step_count = 0
        self.log_seq = 0
        """The log's last `seq_id` covered by a committed step."""
        self._started_ns = 0
        self._ttft_ns: int | None = None
        self._lost = False

    async def execute(self, *, fresh: bool = False) -> None:
        """Run to a terminal state. Never raises for failures of the run itself. A `fresh` run
        (one no worker started before) has no progress to restore."""
        stop, error = "end_turn", None
        try:
            async with self.holding():
                await self.open(fresh=fresh)
                stop = await until_cancelled(self._loop(), self.plan.cancel, self._check_cancel)
        except LeaseLost:
            logger.warning("run %s: lease lost to another worker; stopping without writing", self.run.id)
            self._lost = True
        except RunCancelled:
            stop = "cancelled"
        except Exception as exc:
            stop, error = self.failure(exc)
        if self._lost:
            await self.log.abort()
            return
        await self.finish(stop, error)

    def failure(self, exc: Exception) -> tuple[str, RunFailure]:
        """The stop reason and error event of a run stopped by `exc` (remembered for the HTTP answer)."""
        if isinstance(exc, ModelError):
            self.plan.failure = exc
            return exc.stop_reason, RunFailure(
                error_type_of(exc), f"The model failed: {exc.detail}", type(exc).__name__
            )
        logger.error("run %s failed", self.run.id, exc_info=exc)
        self.plan.failure = ChorusError("An internal error stopped the run.")
        return "error", RunFailure("internal_error", "An internal error stopped the run.", type(exc).__name__)

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Hold the run (status `running`, the lease) while the body runs, watched by the heartbeat."""
        self._started_ns = self._started_ns or time.perf_counter_ns()
        if self.lease.renew and not self._held_fresh():
            await self._update(lambda r: self._hold(r, status="running"))
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"lease-{self.run.id}")
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def mark_running(self) -> None:
        """Status `running` (without taking a lease: a workflow task's run is owned by its workflow)."""
        await self._update(lambda r: r if r.status == "running" else r.model_copy(update={"status": "running"}))

    async def restore(self) -> None:
        """Rebuild progress again from the store (after other workers committed steps)."""
        await self._restore_progress(mark_abandoned=False)

    async def open(self, *, inputs: bool = True, mark_abandoned: bool = True, fresh: bool = False) -> None:
        """Load the conversation and the run's progress (and commit its inputs, once)."""
        self.history = await self._load_history()
        if not fresh or RunOptions.of(self.run).continues is not None:
            await self._restore_progress(mark_abandoned)
        if inputs:
            await self._commit_inputs()

    # lease and status
    def _hold(self, run: RunRecord, **changes: Any) -> RunRecord:
        if run.lease_owner not in (None, self.lease.owner) and run.lease_expires_at > time.time():
            raise LeaseLost
        if run.cancel_requested:
            self.plan.cancel.set()
        return run.model_copy(
            update={"lease_owner": self.lease.owner, "lease_expires_at": time.time() + self.lease.ttl_s, **changes}
        )

    async def _update(self, change: Callable[[RunRecord], RunRecord]) -> None:
        self.run = self.plan.run = await update_run(self.store, self.run, change)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.heartbeat_s)
            if not self.lease.renew:
                await self._watch()
                continue
            try:
                await self._update(self._hold)
            except LeaseLost:
                self._lost = True
                self.plan.cancel.set()
                return
            except ChorusError:
                logger.warning("run %s: heartbeat failed; retrying", self.run.id)

    def _held_fresh(self) -> bool:
        """The run was created held by this worker, its lease far from expiry (a new run's first moments)."""
        run = self.run
        return (
            run.status == "running"
            and run.lease_owner == self.lease.owner
            and not run.cancel_requested
            and run.lease_expires_at - time.time() > self.lease.ttl_s / 2
        )

    async def _watch(self) -> None:
        """Read the stored run: a cancel flag or a run finished elsewhere (cancelled) stops this worker."""
        try:
            run = await self.store.get_run(self.tenant, self.run.id)
        except ChorusError:
            logger.warning("run %s: could not read the run; watching on", self.run.id)
            return
        if run.cancel_requested or run.is_terminal:
            self.plan.cancel.set()

    def _check_cancel(self) -> None:
        if self.plan.cancel.is_set():
            raise LeaseLost if self._lost else RunCancelled

    # progress
    async def _load_history(self) -> list[dict[str, Any]]:
        """The conversation this run continues, as far back as a context reaches (see `load_tail`):
        its group's history, or its own messages (no group)."""
        group = self.plan.group
        key = {"group_id": group.id} if group is not None else {"run_id": self.run.id}
        window = max(a.context_window for a in self.plan.agents.values())
        records = await load_tail(self.store, self.tenant, key, window)
        for record in records:
            if record["run_id"] == self.run.id and record["step_key"] != identity.INPUT_STEP:
                self.slots[record["id"]] = slot_of(record["step_key"])
        return [r["message"] for r in records]

    async def _restore_progress(self, mark_abandoned: bool = True) -> None:
        """Rebuild the manager's progress from committed steps; mark an unfinished attempt abandoned."""
        restored = restore(await self.store.list_steps(self.tenant, self.run.id))
        self.log_seq = restored.log_seq
        self.turns, self.rounds, self.partial = restored.turns, restored.rounds, restored.partial
        self.usage, self.step_count = restored.usage, restored.step_count
        paused = RunOptions.of(self.run).continues
        if paused is not None:
            # a run resuming a paused one continues its plan: the rounds before the pause are done
            earlier = await self.store.list_steps(self.tenant, paused.run_id)
            prior = restore(s for s in earlier if s.agent_id is not None and s.round < paused.round)
            self.turns = prior.turns + self.turns
            self.rounds = max(self.rounds, prior.rounds)
        if mark_abandoned:
            await self.mark_abandoned()

    async def mark_abandoned(self) -> None:
        """Name, in the log, the messages streamed after the last committed step: their attempt
        will never complete. A re-execution then writes its messages under a new incarnation, so
        their ids differ from the abandoned ones."""
        if self.log.last_seq <= self.log_seq:
            return
        rows = await self.store.read_events(self.tenant, self.run.id, self.log_seq, self.log.last_seq - self.log_seq)
        ids: list[str] = []
        step_id = None
        for _, data in rows:
            if data == LOG_END:
                break  # the run was ended meanwhile (a cancel from the API): nothing after the end
            event = orjson.loads(data)
            if "id" in event and event["id"] not in ids:
                ids.append(event["id"])
                step_id = event.get("step_id", step_id)
        if not ids:
            return
        self.log.emit(
            events.abandoned_attempt(
                run_id=self.run.id, step_id=step_id, message_ids=ids, reason="the worker running it stopped"
            )
        )
        if not self.lease.renew:
            # a retried workflow task (in-process recovery bumped the incarnation when it took over)
            await self._update(lambda r: r.model_copy(update={"incarnation": r.incarnation + 1}))

    async def _commit_inputs(self) -> None:
        key = identity.INPUT_STEP
        messages = events.input_messages(self.run.id, key, self.plan.inputs)
        records, step = step_records(self.run, self.plan.group, key, None, messages)
        await self._write(records, step.model_copy(update={"step": 0}))

    async def _loop(self) -> str:
        runner = self.runner()
        while True:
            self._check_cancel()
            decision = self.decide()
            if isinstance(decision, Finish):
                await self.start_children(decision)
                return decision.stop_reason
            self.turns.extend(await self._round(runner, self.rounds + 1, decision.calls))
            self.rounds += 1
            self.partial = {}

    def decide(self) -> Finish | RunAgents:
        """The manager's next decision: pure, so every worker of the run decides the same."""
        view = self.plan.view
        return manager_for(view.manager_type).next(view, self._progress())

    async def start_children(self, decision: Finish) -> None:
        if self.plan.group is not None and decision.background:
            self.children = await start_background(
                self.store, self.run, self.plan.group, self.history, decision, self.spawn
            )

    def _progress(self) -> RunProgress:
        options = RunOptions.of(self.run)
        return RunProgress(
            tuple(self.turns),
            turn_number=options.turn_number,
            backlog=len(
                unprocessed(self.history, self.plan.group.last_processed_message_id if self.plan.group else None)
            ),
            max_steps=options.max_steps,
        )

    def runner(self) -> TurnRunner:
        group = self.plan.group

        def system_prompt(agent: AgentRecord) -> str:
            if group is None:
                return agent.system
            members = {
                *group.agent_ids,
                *([self.plan.view.manager_agent_id] if self.plan.view.manager_agent_id else []),
            }
            return group_system_prompt(agent.system, participants=len(members), description=group.description)

        config = self.run.request_config
        settings = TurnSettings(
            run_id=self.run.id,
            stream_tokens=self.plan.stream_tokens,
            max_steps=RunOptions.of(self.run).max_steps,
            incarnation=self.run.incarnation,
            system_prompt=system_prompt,
            cancelled=self._check_cancel,
            toolbox=Toolbox(
                self.store,
                self.tenant,
                AgentMemory(self.store, self.tenant, self.plan.shared_block_ids),
                executor=self.tool_executor,
                timeout_s=self.tool_timeout_s,
            ),
            speech_tool=(
                str(config.get("assistant_message_tool_name") or "send_message"),
                str(config.get("assistant_message_tool_kwarg") or "message"),
            ),
            use_assistant_message=bool(config.get("use_assistant_message", True)),
        )
        return TurnRunner(settings, self.plan.agents, self.resolve, self.plan.cancel)

    async def _round(self, runner: TurnRunner, index: int, calls: tuple[AgentCall, ...]) -> list[TurnRecord]:
        """Run one decision's calls: one directly, several at once (bounded) in ordered lanes."""
        if len(calls) == 1:
            return [await self.run_call(runner, index, 0, calls, self.direct_lane())]
        lanes = OrderedLanes(len(calls), self.direct_lane())
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

    def direct_lane(self) -> DirectLane:
        """Output straight into this run's log and history."""
        return DirectLane(self._emit, self._commit)

    def finished_turn(self, call: int) -> TurnRecord | None:
        """The turn of call `call` of the unfinished round, if it committed its final step."""
        steps = self.partial.get(call)
        return turn_of(steps[-1]) if steps and steps[-1].final else None

    async def run_call(
        self, runner: TurnRunner, index: int, i: int, calls: tuple[AgentCall, ...], lane: Lane
    ) -> TurnRecord:
        """Run call `i` of round `index` into `lane`, from where an earlier worker left it. In a
        parallel round a worker's model failure ends only its own turn (an error return)."""
        done = self.finished_turn(i)
        if done is not None:
            return done
        slot = Slot(index, i, len(calls)) if len(calls) > 1 else Slot(index)
        steps = self.partial.get(i)
        resume = Resume(len(steps), steps[-1].text) if steps else None
        snapshot = [m for m in self.history if self.slots.get(m["id"], (0, 0))[0] != index]
        own = [m for m in self.history if self.slots.get(m["id"]) == (index, i)]
        if len(calls) == 1:
            return await runner.run(calls[0], slot, lane, snapshot + own, resume=resume, answers=self._answers(index))
        return await runner.run(calls[i], slot, lane, snapshot + own, resume=resume, tolerate_failure=True)

    def _answers(self, round_index: int) -> Answers | None:
        """The human's answers, for the round of the turn this run resumes."""
        options = RunOptions.of(self.run)
        paused = options.continues
        if paused is None or paused.round != round_index:
            return None
        return Answers(tuple(paused.tool_calls), tuple(options.approvals))

    def _emit(self, event: dict[str, Any]) -> None:
        if self._ttft_ns is None:
            self._ttft_ns = time.perf_counter_ns() - self._started_ns
        self.log.emit(event)

    async def _commit(self, commit: StepCommit) -> None:
        """Make the step's events durable, then write its record and messages once."""
        records, step = step_records(self.run, self.plan.group, commit.key, commit.agent_id, commit.messages)
        step = step.model_copy(
            update={
                "stop_reason": commit.stop_reason,
                "text": commit.text,
                "usage": usage_dict(commit.usage),
                "round": commit.slot.round,
                "call": commit.slot.call,
                "calls": commit.slot.calls,
                "step": commit.step,
                "final": commit.final,
                "purpose": commit.purpose,
                "pending": commit.pending,
                "reply_to": commit.reply_to,
                "error": commit.error,
            }
        )
        if await self._write(records, step):
            self.usage = self.usage + commit.usage
            self.step_count += 1
            for record in records:
                self.slots[record.id] = (commit.slot.round, commit.slot.call)
            if self.plan.group is not None:
                await track_pending_approval(self.store, self.plan.group, self.run, commit)

    async def _write(self, records: list[MessageRecord], step: StepRecord) -> bool:
        """Flush the log, then commit; False if the step was committed before (a retry). A cancel
        arriving meanwhile waits for the write: a log batch or a commit cut in half by a
        cancelled await would leave the log's writer and the store disagreeing."""
        return await uncancellable(self._write_now(records, step))

    async def _write_now(self, records: list[MessageRecord], step: StepRecord) -> bool:
        if self._lost:
            raise LeaseLost
        await self.log.flush()
        step = step.model_copy(update={"log_seq": self.log.last_seq})
        try:
            await self.store.commit_step(step, records)
        except AlreadyCommitted:
            logger.info("step %s of run %s was committed before; not writing it again", step.step_key, self.run.id)
            return False
        self.history.extend(r.message for r in records)
        self.log_seq = max(self.log_seq, step.log_seq)
        return True

    async def finish(self, stop: str, error: RunFailure | None, *, duration_ns: int | None = None) -> None:
        """End the run (see `RunFinisher.finish`)."""
        self.run = self.plan.run = await self._finisher().finish(
            self.run, stop, error, self._tally(), self._duration(duration_ns)
        )

    async def finish_record(self, stop: str, duration_ns: int | None = None) -> None:
        """End the run's record for a log that is complete already (see `RunFinisher.finish_record`)."""
        self.run = self.plan.run = await self._finisher().finish_record(
            self.run, stop, self._tally(), self._duration(duration_ns)
        )

    def _finisher(self) -> RunFinisher:
        return RunFinisher(self.store, self.log, self.retention_s)

    def _tally(self) -> Tally:
        return Tally(self.usage, self.step_count, tuple(self.children), self._ttft_ns)

    def _duration(self, duration_ns: int | None) -> Callable[[], int]:
        if duration_ns is not None:
            return lambda: duration_ns
        return lambda: time.perf_counter_ns() - self._started_ns
