"""One agent turn: model steps, tool calls and their returns, until the agent is done.

A turn is a loop of steps. Each step is one model call pumped through an
`AgentTurn` fold, then the tool calls it made: built-in tools run here and
their returns join the step; a call of an orchestrated tool (the
supervisor's broadcast) ends the turn, for the manager to plan. The step's
messages are committed once, under keys derived from the turn's place in
the plan, and the loop goes on while the model calls tools, up to the
request's `max_steps`.

A runner is I/O-free apart from the model stream and its `Lane`, so the
in-process driver and a Step Functions Step task can share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from chorus.engine import events, identity, memory
from chorus.engine.context import build_request
from chorus.engine.managers import AWAITING_TOOL, AgentCall, PendingTool, TurnRecord
from chorus.engine.tools import BUILT_IN, ORCHESTRATED
from chorus.engine.turn import AgentTurn, TurnContext
from chorus.errors import ModelError
from chorus.llm.base import Model, ToolCallRequest, Usage
from chorus.runs.lanes import Lane
from chorus.runs.memory import AgentMemory
from chorus.store.records import AgentRecord

FINISH_STOP = {"end_turn": "end_turn", "tool_use": "end_turn", "max_tokens": "max_tokens_exceeded"}


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a turn sits in the run's plan: call `call` of `calls` in decision `round`."""

    round: int
    call: int = 0
    calls: int = 1


@dataclass(slots=True)
class StepCommit:
    """What one step writes: its messages and the record the run's progress is rebuilt from."""

    key: str
    agent_id: str
    slot: Slot
    step: int
    messages: list[dict[str, Any]]
    usage: Usage
    final: bool
    stop_reason: str
    text: str
    purpose: str
    pending: dict[str, Any] | None = None
    reply_to: str | None = None
    error: str | None = None


@dataclass(slots=True)
class Resume:
    """How far a turn got before its worker stopped: committed steps and their text."""

    steps: int = 0
    text: str = ""


@dataclass(slots=True)
class TurnSettings:
    run_id: str
    stream_tokens: bool
    max_steps: int
    incarnation: int
    system_prompt: Callable[[AgentRecord], str]
    cancelled: Callable[[], None] = field(default=lambda: None)
    """Raises when the run must stop (checked between model chunks)."""
    memory: AgentMemory | None = None
    """The agents' memory blocks and the tools that edit them (none: no memory)."""


class TurnRunner:
    def __init__(
        self,
        settings: TurnSettings,
        agents: Mapping[str, AgentRecord],
        resolve: Callable[[AgentRecord], Model],
        cancel: asyncio.Event,
    ) -> None:
        self.settings = settings
        self.agents = agents
        self.resolve = resolve
        self.cancel = cancel

    async def run(
        self,
        call: AgentCall,
        slot: Slot,
        lane: Lane,
        history: Sequence[dict[str, Any]],
        *,
        resume: Resume | None = None,
        tolerate_failure: bool = False,
    ) -> TurnRecord:
        """Run the turn to its end. With `tolerate_failure` a model failure ends the turn (its
        partial output marked abandoned, its error recorded) instead of the run."""
        resume = resume or Resume()
        state = _TurnState(list(history), resume.steps, resume.text)
        try:
            return await self._steps(call, slot, lane, state)
        except ModelError as exc:
            if not tolerate_failure:
                raise
            return await self._failed(call, slot, lane, state, exc)

    async def _steps(self, call: AgentCall, slot: Slot, lane: Lane, state: _TurnState) -> TurnRecord:
        agent = self.agents[call.agent_id]
        model = self.resolve(agent)
        cfg = self.settings
        while True:
            blocks = await cfg.memory.blocks(agent) if cfg.memory is not None else []
            tools = [BUILT_IN[name] for name in call.tools] + memory.tools(blocks)
            system = "\n\n".join(p for p in (cfg.system_prompt(agent), memory.render(blocks)) if p)
            state.step += 1
            key = identity.step_key(slot.round, slot.call, state.step)
            ctx = TurnContext(
                cfg.run_id, key, agent.id, agent.name, events.wire_date(), cfg.stream_tokens, cfg.incarnation
            )
            turn = state.turn = AgentTurn(ctx)
            if call.tool_return is not None and state.step == 1:
                ret = call.tool_return
                lane.emit(_tool_return(turn, ret.tool_call_id, ret.content, ret.status))
            request = build_request(
                model=model.handle.partition("/")[2],
                agent_id=agent.id,
                agent_name=agent.name,
                system=system,
                history=[*state.history, *turn.messages],
                tools=tools,
                instruction=call.instruction,
                hidden_senders=call.hidden_senders,
                context_limit=call.context_limit,
            )
            async for model_event in model.stream(request):
                for event in turn.feed(model_event):
                    lane.emit(event)
                if self.cancel.is_set():
                    cfg.cancelled()
            rest, outcome = turn.finish()
            for event in rest:
                lane.emit(event)
            offered = frozenset(t.name for t in tools)
            pending = await self._tool_calls(call, agent, offered, turn, outcome.tool_calls, lane)
            state.text += "".join(
                str(m.get("content", "")) for m in outcome.messages if m["message_type"] == "assistant_message"
            )
            if pending is not None:
                stop, final = AWAITING_TOOL, True
            elif outcome.tool_calls:
                stop, final = "max_steps", state.step >= cfg.max_steps
            else:
                stop, final = FINISH_STOP.get(outcome.finish_reason, "end_turn"), True
            await lane.commit(
                StepCommit(
                    key=key,
                    agent_id=agent.id,
                    slot=slot,
                    step=state.step,
                    messages=outcome.messages,
                    usage=outcome.usage,
                    final=final,
                    stop_reason=stop,
                    text=state.text,
                    purpose=call.purpose,
                    pending=None if pending is None else _pending_dict(pending),
                    reply_to=call.reply_to,
                )
            )
            state.history.extend(outcome.messages)
            state.turn = None
            if final:
                return TurnRecord(agent.id, stop, state.text, call.purpose, pending, call.reply_to)

    async def _tool_calls(
        self,
        call: AgentCall,
        agent: AgentRecord,
        offered: frozenset[str],
        turn: AgentTurn,
        requests: list[ToolCallRequest],
        lane: Lane,
    ) -> PendingTool | None:
        """Answer the step's tool calls; returns the orchestrated call the turn stops at, if any."""
        pending: PendingTool | None = None
        for request in requests:
            if request.name not in offered:
                names = ", ".join(sorted(offered)) or "none"
                error = f"Tool {request.name!r} is not available to this agent (tools offered: {names})."
                lane.emit(_tool_return(turn, request.id, error, "error"))
                continue
            try:
                arguments = orjson.loads(request.arguments or "{}")
            except orjson.JSONDecodeError:
                arguments = None
            if not isinstance(arguments, dict):
                error = f"The arguments of {request.name!r} must be a JSON object, got {request.arguments!r}."
                lane.emit(_tool_return(turn, request.id, error, "error"))
                continue
            if request.name in memory.MEMORY_TOOLS and self.settings.memory is not None:
                content, status = await self.settings.memory.call(agent, request.name, arguments)
                lane.emit(_tool_return(turn, request.id, content, status))
            elif request.name in ORCHESTRATED:
                if pending is None:
                    pending = PendingTool(request.id, request.name, arguments)
                else:
                    error = f"Only one {request.name!r} call per step is carried out; this one was not."
                    lane.emit(_tool_return(turn, request.id, error, "error"))
        return pending

    async def _failed(self, call: AgentCall, slot: Slot, lane: Lane, state: _TurnState, exc: ModelError) -> TurnRecord:
        key = identity.step_key(slot.round, slot.call, state.step)
        turn = state.turn
        if turn is not None and turn.emitted_ids():
            lane.emit(
                events.abandoned_attempt(
                    run_id=self.settings.run_id,
                    step_id=turn.step_id,
                    message_ids=turn.emitted_ids(),
                    reason=f"the model failed: {exc.detail}",
                )
            )
        error = f"The model failed: {exc.detail}"
        await lane.commit(
            StepCommit(
                key=key,
                agent_id=call.agent_id,
                slot=slot,
                step=state.step,
                messages=[],
                usage=Usage(),
                final=True,
                stop_reason=exc.stop_reason,
                text=state.text,
                purpose=call.purpose,
                reply_to=call.reply_to,
                error=error,
            )
        )
        return TurnRecord(call.agent_id, exc.stop_reason, state.text, call.purpose, None, call.reply_to, error)


@dataclass(slots=True)
class _TurnState:
    history: list[dict[str, Any]]
    step: int
    text: str
    turn: AgentTurn | None = None
    """The step in flight, whose partial output a failure marks abandoned."""


def _tool_return(turn: AgentTurn, tool_call_id: str, content: str, status: str) -> dict[str, Any]:
    return turn.append(
        "tool_return_message",
        tool_return=content,
        status=status,
        tool_call_id=tool_call_id,
        stdout=None,
        stderr=None,
    )


def _pending_dict(pending: PendingTool) -> dict[str, Any]:
    return {"tool_call_id": pending.tool_call_id, "name": pending.name, "arguments": dict(pending.arguments)}
