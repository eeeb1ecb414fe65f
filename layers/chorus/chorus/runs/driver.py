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
unfinished step. Cancellation is observed between token chunks and between
turns (invariant 4); a cancelled or failed step's partial output was
streamed but is never committed to history.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from chorus.engine import events, identity
from chorus.engine.context import build_request, group_system_prompt
from chorus.engine.managers import Finish, GroupView, RunAgents, RunProgress, TurnRecord, manager_for
from chorus.engine.turn import AgentTurn, TurnContext, TurnOutcome
from chorus.errors import AlreadyCommitted, ChorusError, Conflict, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.base import Model, Usage
from chorus.runs.log import RunLog
from chorus.schemas.requests import MessageCreate
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, MessageRecord, Page, RunRecord, StepRecord

logger = logging.getLogger(__name__)

ModelResolver = Callable[[AgentRecord], Model]
_FINISH_STOP = {"end_turn": "end_turn", "tool_use": "end_turn", "max_tokens": "max_tokens_exceeded"}
FAILED_STOP_REASONS = frozenset(
    {"error", "llm_api_error", "invalid_llm_response", "invalid_tool_call", "no_tool_call", "max_tokens_exceeded"}
)


class RunCancelled(Exception):
    """Raised inside the driver when the run's cancel flag is seen."""


class LeaseLost(Exception):
    """Another worker took the run over; this one must stop writing."""


@dataclass(slots=True)
class RunPlan:
    """Everything a run needs, loaded and validated before the first byte is sent."""

    run: RunRecord
    group: GroupRecord
    agents: dict[str, AgentRecord]
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    failure: ChorusError | None = None
    """Why the run failed, for a non-streaming response to answer with the right status."""

    @property
    def stream_tokens(self) -> bool:
        return bool(self.run.options.get("stream_tokens", False))

    @property
    def inputs(self) -> list[MessageCreate]:
        return [MessageCreate.model_validate(m) for m in self.run.inputs]


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    ttl_s: float = 30.0
    heartbeat_s: float = 1.0
    """How often the lease is renewed and the stored cancel flag read."""


ERROR_STATUS = {"llm_rate_limit": 429, "llm_timeout": 504, "llm_error": 502, "internal_error": 500}
"""HTTP status of a failed run by its error event's `error_type` (non-streaming answers)."""


def error_type_of(exc: ModelError) -> str:
    if isinstance(exc, ModelRateLimited):
        return "llm_rate_limit"
    if isinstance(exc, ModelTimeout):
        return "llm_timeout"
    return "llm_error"


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def status_for(stop_reason: str) -> str:
    if stop_reason == "cancelled":
        return "cancelled"
    return "failed" if stop_reason in FAILED_STOP_REASONS else "completed"


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
    ) -> None:
        self.store = store
        self.resolve = resolve
        self.plan = plan
        self.log = log
        self.lease = lease
        self.retention_s = retention_s
        self.run = plan.run
        self.tenant = plan.run.tenant_id
        self.history: list[dict[str, Any]] = []
        self.turns: list[TurnRecord] = []
        self.usage = Usage()
        self.step_count = 0
        self._started_ns = 0
        self._ttft_ns: int | None = None
        self._lost = False

    async def execute(self) -> None:
        """Run to a terminal state. Never raises for failures of the run itself."""
        self._started_ns = time.perf_counter_ns()
        stop, error = "end_turn", None
        heartbeat: asyncio.Task[None] | None = None
        try:
            await self._update(lambda r: self._hold(r, status="running"))
            heartbeat = asyncio.create_task(self._heartbeat(), name=f"lease-{self.run.id}")
            self.history = await self._load_history()
            await self._restore_progress()
            await self._commit_inputs()
            stop = await self._loop()
        except LeaseLost:
            logger.warning("run %s: lease lost to another worker; stopping without writing", self.run.id)
            self._lost = True
        except RunCancelled:
            stop = "cancelled"
        except ModelError as exc:
            self.plan.failure = exc
            stop, error = exc.stop_reason, (error_type_of(exc), f"The model failed: {exc.detail}", type(exc).__name__)
        except Exception as exc:
            logger.exception("run %s failed", self.run.id)
            self.plan.failure = ChorusError("An internal error stopped the run.")
            stop, error = "error", ("internal_error", "An internal error stopped the run.", type(exc).__name__)
        finally:
            if heartbeat is not None:
                heartbeat.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await heartbeat
        if self._lost:
            await self.log.abort()
            return
        await self._finish(stop, error)

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
        """Apply `change` to the stored run with compare-and-set, re-reading on conflicts."""
        for _ in range(50):
            try:
                self.run = await self.store.update_run(change(self.run), expect_version=self.run.version)
                self.plan.run = self.run
                return
            except Conflict:
                self.run = await self.store.get_run(self.tenant, self.run.id)
        raise ChorusError(f"run {self.run.id} is updated too often to write")

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.heartbeat_s)
            try:
                await self._update(self._hold)
            except LeaseLost:
                self._lost = True
                self.plan.cancel.set()
                return
            except ChorusError:
                logger.warning("run %s: heartbeat failed; retrying", self.run.id)

    def _check_cancel(self) -> None:
        if self.plan.cancel.is_set():
            raise LeaseLost if self._lost else RunCancelled

    # progress
    async def _load_history(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            page = Page(after=after, limit=1000, order="asc")
            batch = await self.store.list_messages(self.tenant, page, group_id=self.plan.group.id)
            out.extend(m.message for m in batch)
            if len(batch) < page.limit:
                return out
            after = batch[-1].id

    async def _restore_progress(self) -> None:
        """Rebuild the manager's progress from committed steps; mark an unfinished attempt abandoned."""
        steps = await self.store.list_steps(self.tenant, self.run.id)
        for step in steps:
            if step.agent_id is None:
                continue
            self.turns.append(TurnRecord(step.agent_id, step.stop_reason, step.text))
            self.usage = self.usage + Usage(
                prompt_tokens=step.usage.get("prompt_tokens", 0),
                completion_tokens=step.usage.get("completion_tokens", 0),
                cached_input_tokens=step.usage.get("cached_input_tokens", 0),
                cache_write_tokens=step.usage.get("cache_write_tokens", 0),
                reasoning_tokens=step.usage.get("reasoning_tokens", 0),
            )
            self.step_count += 1
        committed_seq = max((s.log_seq for s in steps), default=0)
        if self.log.base_seq > committed_seq:
            rows = await self.store.read_events(self.tenant, self.run.id, committed_seq, self.log.base_seq)
            ids: list[str] = []
            step_id = None
            for _, data in rows:
                event = orjson.loads(data)
                if "id" in event and event["id"] not in ids:
                    ids.append(event["id"])
                    step_id = event.get("step_id", step_id)
            self.log.emit(
                events.abandoned_attempt(
                    run_id=self.run.id, step_id=step_id, message_ids=ids, reason="the worker running it stopped"
                )
            )

    async def _commit_inputs(self) -> None:
        key = identity.step_key(0)
        date = events.wire_date()
        step_id = identity.step_id(self.run.id, key)
        messages = []
        for index, msg in enumerate(self.plan.inputs):
            mid = identity.message_id(self.run.id, key, index)
            kind = {"user": "user_message", "system": "system_message", "assistant": "assistant_message"}[msg.role]
            content: Any = (
                msg.content if isinstance(msg.content, str) else [p.model_dump(mode="json") for p in msg.content]
            )
            messages.append(
                events.message(
                    kind,
                    id=mid,
                    date=date,
                    otid=msg.otid or identity.otid(mid),
                    run_id=self.run.id,
                    step_id=step_id,
                    name=msg.name,
                    sender_id=msg.sender_id,
                    content=content,
                )
            )
        await self._commit(key, None, messages, "end_turn", "", Usage())

    async def _loop(self) -> str:
        group = self.plan.group
        view = GroupView(group.id, group.manager_type, tuple(group.agent_ids), dict(group.manager_config))
        manager = manager_for(group.manager_type)
        while True:
            self._check_cancel()
            decision = manager.next(view, RunProgress(tuple(self.turns)))
            if isinstance(decision, Finish):
                return decision.stop_reason
            assert isinstance(decision, RunAgents)
            for call in decision.calls:
                self.turns.append(await self._agent_turn(call.agent_id, len(self.turns) + 1))

    async def _agent_turn(self, agent_id: str, index: int) -> TurnRecord:
        agent = self.plan.agents[agent_id]
        key = identity.step_key(index)
        model = self.resolve(agent)
        system = group_system_prompt(
            agent.system, participants=len(self.plan.group.agent_ids), description=self.plan.group.description
        )
        request = build_request(
            model=model.handle.partition("/")[2],
            agent_id=agent.id,
            agent_name=agent.name,
            system=system,
            history=self.history,
        )
        context = TurnContext(
            self.run.id, key, agent.id, agent.name, events.wire_date(), self.plan.stream_tokens, self.run.incarnation
        )
        turn = AgentTurn(context)
        emit = self._emit
        cancel = self.plan.cancel
        async for model_event in model.stream(request):
            for event in turn.feed(model_event):
                emit(event)
            if cancel.is_set():
                self._check_cancel()
        rest, outcome = turn.finish()
        for event in rest:
            emit(event)
        record = self._record(agent.id, outcome)
        self.step_count += 1
        self.usage = self.usage + outcome.usage
        await self._commit(key, agent.id, outcome.messages, record.stop_reason, record.text, outcome.usage)
        return record

    def _record(self, agent_id: str, outcome: TurnOutcome) -> TurnRecord:
        text = "".join(str(m.get("content", "")) for m in outcome.messages if m["message_type"] == "assistant_message")
        return TurnRecord(agent_id, _FINISH_STOP.get(outcome.finish_reason, "end_turn"), text)

    def _emit(self, event: dict[str, Any]) -> None:
        if self._ttft_ns is None:
            self._ttft_ns = time.perf_counter_ns() - self._started_ns
        self.log.emit(event)

    async def _commit(
        self, key: str, agent_id: str | None, messages: list[dict[str, Any]], stop: str, text: str, usage: Usage
    ) -> None:
        """Make the step's events durable, then write its record and messages once."""
        if self._lost:
            raise LeaseLost
        await self.log.flush()
        created = now_iso()
        stamp = time.time_ns()
        records = [
            MessageRecord(
                tenant_id=self.tenant,
                id=msg["id"],
                created_at=created,
                group_id=self.plan.group.id,
                agent_id=agent_id,
                run_id=self.run.id,
                step_key=key,
                index=i,
                position=f"{stamp:020d}:{self.run.id}:{key}:{i:04d}",
                message={**msg, "seq_id": None},
            )
            for i, msg in enumerate(messages)
        ]
        step = StepRecord(
            tenant_id=self.tenant,
            id=identity.step_id(self.run.id, key),
            created_at=created,
            run_id=self.run.id,
            step_key=key,
            agent_id=agent_id,
            stop_reason=stop,
            text=text,
            usage={
                "prompt_tokens": usage.prompt_tokens,
                "completion_tokens": usage.completion_tokens,
                "cached_input_tokens": usage.cached_input_tokens,
                "cache_write_tokens": usage.cache_write_tokens,
                "reasoning_tokens": usage.reasoning_tokens,
            },
            log_seq=self.log.last_seq,
        )
        try:
            await self.store.commit_step(step, records)
        except AlreadyCommitted:
            logger.info("step %s of run %s was committed before; not writing it again", key, self.run.id)
            return
        self.history.extend(r.message for r in records)

    async def _finish(self, stop: str, error: tuple[str, str, str | None] | None) -> None:
        run = self.run
        log = self.log
        try:
            log.emit(events.stop_reason(stop))
            if error is not None:
                error_type, message, detail = error
                log.emit(events.error_message(run_id=run.id, error_type=error_type, message=message, detail=detail))
            elif stop != "cancelled":
                log.emit(self._usage_event())
        except Exception:
            logger.exception("could not write the end of run %s", run.id)
            stop = stop if stop in FAILED_STOP_REASONS else "error"
        finally:
            try:
                await log.close()
            except Exception:
                logger.exception("could not complete the event log of run %s", run.id)
                stop = stop if stop in FAILED_STOP_REASONS else "error"
        usage = self._usage_event()
        duration = time.perf_counter_ns() - self._started_ns

        def terminal(r: RunRecord) -> RunRecord:
            return r.model_copy(
                update={
                    "status": status_for(stop),
                    "stop_reason": stop,
                    "completed_at": now_iso(),
                    "ttft_ns": self._ttft_ns if r.ttft_ns is None else r.ttft_ns,
                    "total_duration_ns": duration,
                    "usage": usage,
                    "lease_owner": None,
                    "lease_expires_at": 0.0,
                    "expires_at": time.time() + self.retention_s,
                }
            )

        try:
            await self._update(terminal)
        finally:
            if run.group_id is not None:
                await self.store.release_group(self.tenant, run.group_id, run.id)

    def _usage_event(self) -> dict[str, Any]:
        u = self.usage
        return events.usage_statistics(
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            step_count=self.step_count,
            run_ids=[self.run.id],
            cached_input_tokens=u.cached_input_tokens,
            cache_write_tokens=u.cache_write_tokens,
            reasoning_tokens=u.reasoning_tokens,
        )
