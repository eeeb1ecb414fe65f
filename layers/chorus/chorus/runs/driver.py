"""Executes one group run in this process: manager → agent turns → commits → finish.

The driver is the only place where the pure engine meets I/O: it loads
history, pumps each model stream through an `AgentTurn`, emits events to the
`RunLog`, commits each step's messages once (keyed by run and step), and
always ends the run with a terminal status, a `stop_reason`, and `[DONE]`
(invariant 3). Cancellation is observed between token chunks and between
turns (invariant 4); a cancelled or failed step's partial output was
streamed but is never committed to history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from chorus.engine import events, identity
from chorus.engine.context import build_request, group_system_prompt
from chorus.engine.managers import Finish, GroupView, RunAgents, RunProgress, TurnRecord, manager_for
from chorus.engine.turn import AgentTurn, TurnContext, TurnOutcome
from chorus.errors import AlreadyCommitted, ChorusError, ModelError
from chorus.llm.base import Model, Usage
from chorus.runs.log import RunLog
from chorus.schemas.requests import MessageCreate
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, MessageRecord, Page, RunRecord

logger = logging.getLogger(__name__)

ModelResolver = Callable[[AgentRecord], Model]
_FINISH_STOP = {"end_turn": "end_turn", "tool_use": "end_turn", "max_tokens": "max_tokens_exceeded"}
_FAILED = frozenset(
    {
        "error",
        "llm_api_error",
        "invalid_llm_response",
        "invalid_tool_call",
        "no_tool_call",
        "max_tokens_exceeded",
    }
)


class RunCancelled(Exception):
    """Raised inside the driver when the run's cancel flag is seen."""


@dataclass(slots=True)
class RunPlan:
    """Everything a run needs, loaded and validated before the first byte is sent."""

    run: RunRecord
    group: GroupRecord
    agents: dict[str, AgentRecord]
    inputs: list[MessageCreate]
    stream_tokens: bool
    max_steps: int
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    failure: ChorusError | None = None
    """Why the run failed, for a non-streaming response to answer with the right status."""


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


class RunDriver:
    def __init__(self, store: Store, resolve: ModelResolver, plan: RunPlan, log: RunLog) -> None:
        self.store = store
        self.resolve = resolve
        self.plan = plan
        self.log = log
        self.run = plan.run
        self.tenant = plan.run.tenant_id
        self.history: list[dict[str, Any]] = []
        self.usage = Usage()
        self.step_count = 0
        self._started_ns = 0
        self._ttft_ns: int | None = None

    async def execute(self) -> None:
        """Run to a terminal state. Never raises for failures of the run itself."""
        self._started_ns = time.perf_counter_ns()
        run = self.run
        run.status = "running"
        stop, error = "end_turn", None
        try:
            await self.store.put_run(run)
            self.history = await self._load_history()
            await self._commit_inputs()
            stop = await self._loop()
        except RunCancelled:
            stop = "cancelled"
        except ModelError as exc:
            self.plan.failure = exc
            stop, error = (
                exc.stop_reason,
                ("llm_error", f"The model failed: {exc.detail}", type(exc).__name__),
            )
        except Exception as exc:
            logger.exception("run %s failed", run.id)
            self.plan.failure = ChorusError("An internal error stopped the run.")
            stop, error = (
                "error",
                ("internal_error", "An internal error stopped the run.", type(exc).__name__),
            )
        await self._finish(stop, error)

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
        await self._commit(key, None, messages)

    async def _loop(self) -> str:
        group = self.plan.group
        view = GroupView(group.id, group.manager_type, tuple(group.agent_ids), dict(group.manager_config))
        manager = manager_for(group.manager_type)
        turns: list[TurnRecord] = []
        while True:
            self._check_cancel()
            decision = manager.next(view, RunProgress(tuple(turns)))
            if isinstance(decision, Finish):
                return decision.stop_reason
            assert isinstance(decision, RunAgents)
            for call in decision.calls:
                turns.append(await self._agent_turn(call.agent_id, len(turns) + 1))

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
        turn = AgentTurn(
            TurnContext(self.run.id, key, agent.id, agent.name, events.wire_date(), self.plan.stream_tokens)
        )
        emit = self._emit
        cancel = self.plan.cancel
        async for model_event in model.stream(request):
            for event in turn.feed(model_event):
                emit(event)
            if cancel.is_set():
                raise RunCancelled
        rest, outcome = turn.finish()
        for event in rest:
            emit(event)
        self.step_count += 1
        self.usage = self.usage + outcome.usage
        await self._commit(key, agent.id, outcome.messages)
        return self._record(agent.id, outcome)

    def _record(self, agent_id: str, outcome: TurnOutcome) -> TurnRecord:
        text = "".join(str(m.get("content", "")) for m in outcome.messages if m["message_type"] == "assistant_message")
        return TurnRecord(agent_id, _FINISH_STOP.get(outcome.finish_reason, "end_turn"), text)

    def _emit(self, event: dict[str, Any]) -> None:
        if self._ttft_ns is None:
            self._ttft_ns = time.perf_counter_ns() - self._started_ns
        self.log.emit(event)

    def _check_cancel(self) -> None:
        if self.plan.cancel.is_set():
            raise RunCancelled

    async def _commit(self, key: str, agent_id: str | None, messages: list[dict[str, Any]]) -> None:
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
        try:
            await self.store.commit_step(self.tenant, self.run.id, key, records)
        except AlreadyCommitted:
            logger.info("step %s of run %s was committed before; not writing it again", key, self.run.id)
        self.history.extend(r.message for r in records)

    async def _finish(self, stop: str, error: tuple[str, str, str | None] | None) -> None:
        run = self.run
        log = self.log
        try:
            log.emit(events.stop_reason(stop))
            if error is None:
                log.emit(self._usage_event())
            else:
                error_type, message, detail = error
                log.emit(events.error_message(run_id=run.id, error_type=error_type, message=message, detail=detail))
            await log.close()
        except Exception:
            logger.exception("could not complete the event log of run %s", run.id)
            stop = "error" if stop not in _FAILED else stop
        run.status = "cancelled" if stop == "cancelled" else ("failed" if stop in _FAILED else "completed")
        run.stop_reason = stop
        run.completed_at = now_iso()
        run.ttft_ns = self._ttft_ns
        run.total_duration_ns = time.perf_counter_ns() - self._started_ns
        run.usage = self._usage_event()
        await self.store.put_run(run)

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
