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

from chorus.engine import events, identity, memory
from chorus.engine.compaction import as_context, in_context
from chorus.engine.context import build_request
from chorus.engine.managers import AWAITING_TOOL, AgentCall, PendingTool, TurnRecord
from chorus.engine.tool_rules import ToolRules
from chorus.engine.tools import BUILT_IN, LEGACY_AGENT_TYPES, ORCHESTRATED, send_message_spec, tool_arguments
from chorus.engine.turn import AgentTurn, TurnContext, TurnOutcome, speech_of
from chorus.errors import ModelError
from chorus.llm.base import Model, ToolCallRequest, Usage
from chorus.runs.compactor import fit_window
from chorus.runs.lanes import Lane
from chorus.runs.toolbox import AgentTools, Toolbox, ToolOutcome
from chorus.store.records import AgentRecord
from chorus.vocabulary import STOP_AFTER_FINISH, ModelRequest, ToolSpec


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


@dataclass(frozen=True, slots=True)
class Answers:
    """A human's answers to the tool calls a paused turn waits on (the approvals flow).

    `calls` are the pending calls (`tool_call_id`, `name`, `arguments`); `answers` the
    request's `approvals` dumps: `{"type": "approval", "approve", "reason"}` or a client-side
    `{"type": "tool", "tool_return", "status"}`, each with its `tool_call_id`."""

    calls: tuple[dict[str, Any], ...]
    answers: tuple[dict[str, Any], ...]


@dataclass(slots=True)
class TurnSettings:
    run_id: str
    stream_tokens: bool
    max_steps: int
    incarnation: int
    system_prompt: Callable[[AgentRecord], str]
    cancelled: Callable[[], None] = field(default=lambda: None)
    """Raises when the run must stop (checked between model chunks)."""
    toolbox: Toolbox | None = None
    """The agents' memory and custom tools (none: built-in tools only)."""
    speech_tool: tuple[str, str] = ("send_message", "message")
    """The tool and argument legacy agents speak through (`assistant_message_tool_name`/`_kwarg`)."""
    use_assistant_message: bool = True
    """Stream a legacy agent's speech as `assistant_message` (else as the tool call it is)."""


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
        answers: Answers | None = None,
    ) -> TurnRecord:
        """Run the turn to its end. With `tolerate_failure` a model failure ends the turn (its
        partial output marked abandoned, its error recorded) instead of the run; with `answers`
        the turn resumes after a human approved or denied its pending tool calls."""
        resume = resume or Resume()
        state = _TurnState(list(history), resume.steps, resume.text)
        try:
            return await self._steps(call, slot, lane, state, answers if not resume.steps else None)
        except ModelError as exc:
            if not tolerate_failure:
                raise
            return await self._failed(call, slot, lane, state, exc)

    async def _steps(
        self, call: AgentCall, slot: Slot, lane: Lane, state: _TurnState, answers: Answers | None
    ) -> TurnRecord:
        agent = self.agents[call.agent_id]
        model = self.resolve(agent)
        cfg = self.settings
        rules = ToolRules.of(agent.tool_rules)
        while True:
            tools = await cfg.toolbox.load(agent) if cfg.toolbox is not None else AgentTools()
            legacy = agent.agent_type in LEGACY_AGENT_TYPES
            speech = cfg.speech_tool if legacy else None
            available = [BUILT_IN[name] for name in call.tools] + tools.specs()
            if speech is not None:
                available.append(send_message_spec(*speech))
            allowed = rules.allowed([t.name for t in available], state.called)
            offered = [t for t in available if t.name in allowed]
            system = "\n\n".join(p for p in (cfg.system_prompt(agent), memory.render(tools.blocks)) if p)
            state.step += 1
            key = identity.step_key(slot.round, slot.call, state.step)
            ctx = TurnContext(
                cfg.run_id, key, agent.id, agent.name, events.wire_date(), cfg.stream_tokens, cfg.incarnation
            )
            turn = state.turn = AgentTurn(ctx)
            if state.step == 1:
                await self._prelude(call, agent, tools, turn, lane, state, answers)

            def build(turn: AgentTurn = turn, system: str = system, offered: list[ToolSpec] = offered) -> ModelRequest:
                view = in_context([*state.history, *turn.messages])
                return build_request(
                    model=model.handle.partition("/")[2],
                    agent_id=agent.id,
                    agent_name=agent.name,
                    system=system,
                    history=view.messages,
                    tools=offered,
                    instruction=call.instruction,
                    reminder=state.nudge,
                    enable_reasoning=agent.reasoning,
                    hidden_senders=call.hidden_senders,
                    context_limit=call.context_limit,
                    summary=as_context(view.summary) if view.summary is not None else None,
                )

            request = await fit_window(
                model=model,
                agent=agent,
                history=[*state.history, *turn.messages],
                build=build,
                turn=turn,
                lane=lane,
                cancelled=cfg.cancelled,
            )
            state.nudge = None
            async for model_event in model.stream(request):
                for event in turn.feed(model_event):
                    lane.emit(event)
                if self.cancel.is_set():
                    cfg.cancelled()
            rest, outcome = turn.finish(
                _approval_policy(call, agent, tools, allowed), speech if cfg.use_assistant_message else None
            )
            for event in rest:
                lane.emit(event)
            spoke, handled = self._speech(speech, outcome, turn, lane, state)
            handled |= {r.id for r in outcome.held}
            unanswered = [r for r in outcome.tool_calls if r.id not in handled]
            pending = await self._tool_calls(call, agent, tools, allowed, turn, unanswered, lane, state)
            state.text += "".join(
                str(m.get("content", "")) for m in outcome.messages if m["message_type"] == "assistant_message"
            )
            missing = rules.missing_before_exit(state.called) if not outcome.tool_calls else []
            if missing:
                state.nudge = f"Before you finish, you must call: {', '.join(missing)}."
            if outcome.held:
                stop, final = "requires_approval", True
            elif pending is not None:
                stop, final = AWAITING_TOOL, True
            elif any(rules.ends_turn(r.name) for r in outcome.tool_calls if r.name in state.accepted):
                stop, final = "tool_rule", True
            elif spoke:
                stop, final = "end_turn", True
            elif outcome.tool_calls or missing:
                stop, final = "max_steps", state.step >= cfg.max_steps
            else:
                stop, final = STOP_AFTER_FINISH.get(outcome.finish_reason, "end_turn"), True
            held_calls = [{"tool_call_id": r.id, "name": r.name, "arguments": r.arguments} for r in outcome.held]
            waits_on = (
                _pending_dict(pending) if pending is not None else {"approval": held_calls} if held_calls else None
            )
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
                    pending=waits_on,
                    reply_to=call.reply_to,
                )
            )
            state.history.extend(outcome.messages)
            state.turn = None
            if final:
                return TurnRecord(agent.id, stop, state.text, call.purpose, pending, call.reply_to)

    @staticmethod
    def _speech(
        speech: tuple[str, str] | None, outcome: TurnOutcome, turn: AgentTurn, lane: Lane, state: _TurnState
    ) -> tuple[bool, set[str]]:
        """Answer a legacy agent's speech calls; returns whether it spoke and the calls answered.

        Streamed as `assistant_message`s already (`outcome.spoken`), or, without
        `use_assistant_message`, answered here as the tool calls they are."""
        spoke, handled = bool(outcome.spoken), {r.id for r in outcome.spoken}
        if speech is None:
            return spoke, handled
        for said in outcome.tool_calls:
            if said.name != speech[0] or said.id in handled:
                continue
            handled.add(said.id)
            text = speech_of(said.arguments, speech[1])
            if text is None:
                lane.emit(_tool_return(turn, said.id, f"{speech[0]} needs a string {speech[1]!r} argument.", "error"))
                continue
            lane.emit(_tool_return(turn, said.id, "Sent message successfully.", "success"))
            state.text += text
            spoke = True
        return spoke, handled

    async def _prelude(
        self,
        call: AgentCall,
        agent: AgentRecord,
        tools: AgentTools,
        turn: AgentTurn,
        lane: Lane,
        state: _TurnState,
        answers: Answers | None,
    ) -> None:
        """What opens a resumed turn: an orchestrated tool's return, or the human's answers."""
        if call.tool_return is not None:
            ret = call.tool_return
            lane.emit(_tool_return(turn, ret.tool_call_id, ret.content, ret.status))
        if answers is None:
            return
        first = answers.answers[0]
        lane.emit(
            turn.append(
                "approval_response_message",
                approvals=list(answers.answers),
                approve=first.get("approve"),
                approval_request_id=first["tool_call_id"],
                reason=first.get("reason"),
            )
        )
        by_id = {a["tool_call_id"]: a for a in answers.answers}
        for pending in answers.calls:
            answer = by_id[pending["tool_call_id"]]
            if answer.get("type") == "tool":
                outcome = ToolOutcome(
                    str(answer["tool_return"]), answer["status"], answer.get("stdout"), answer.get("stderr")
                )
            elif answer.get("approve"):
                outcome = await self._run_tool(
                    agent, tools, pending["name"], pending["arguments"], pending["tool_call_id"]
                )
                state.called.append(pending["name"])
                state.accepted.add(pending["name"])
            else:
                reason = answer.get("reason") or "none given"
                outcome = ToolOutcome(f"Error: request to call tool denied. User reason: {reason}", "error")
            lane.emit(_tool_return(turn, pending["tool_call_id"], outcome.content, outcome.status, outcome))

    async def _run_tool(
        self, agent: AgentRecord, tools: AgentTools, name: str, arguments: str, call_id: str
    ) -> ToolOutcome:
        parsed = tool_arguments(arguments)
        if parsed is None:
            return ToolOutcome(_not_an_object(name, arguments), "error")
        if self.settings.toolbox is None:
            return ToolOutcome(f"Tool {name!r} cannot run here.", "error")
        return await self.settings.toolbox.run(agent, tools, name, parsed, call_id)

    async def _tool_calls(
        self,
        call: AgentCall,
        agent: AgentRecord,
        tools: AgentTools,
        allowed: list[str],
        turn: AgentTurn,
        requests: list[ToolCallRequest],
        lane: Lane,
        state: _TurnState,
    ) -> PendingTool | None:
        """Answer the step's tool calls; returns the orchestrated call the turn stops at, if any."""
        pending: PendingTool | None = None
        for request in requests:
            if request.name not in allowed:
                names = ", ".join(sorted(allowed)) or "none"
                error = f"Tool {request.name!r} is not available to this agent now (tools allowed: {names})."
                lane.emit(_tool_return(turn, request.id, error, "error"))
                continue
            if call.reply_to is not None and Toolbox.needs_approval(agent, tools, request.name):
                error = f"Tool {request.name!r} needs a human's approval, which a broadcast reply cannot wait for."
                lane.emit(_tool_return(turn, request.id, error, "error"))
                continue
            if request.name in ORCHESTRATED:
                arguments = tool_arguments(request.arguments)
                if arguments is None:
                    lane.emit(_tool_return(turn, request.id, _not_an_object(request.name, request.arguments), "error"))
                elif pending is None:
                    pending = PendingTool(request.id, request.name, arguments)
                else:
                    error = f"Only one {request.name!r} call per step is carried out; this one was not."
                    lane.emit(_tool_return(turn, request.id, error, "error"))
                continue
            outcome = await self._run_tool(agent, tools, request.name, request.arguments, request.id)
            state.called.append(request.name)
            state.accepted.add(request.name)
            lane.emit(_tool_return(turn, request.id, outcome.content, outcome.status, outcome))
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
    called: list[str] = field(default_factory=list)
    """Tools run in this turn, in order (what tool rules look at)."""
    accepted: set[str] = field(default_factory=set)
    nudge: str | None = None
    """Said to the model at the next step only (a tool it must still call)."""


def _not_an_object(name: str, arguments: str) -> str:
    return f"The arguments of {name!r} must be a JSON object, got {arguments!r}."


def _approval_policy(
    call: AgentCall, agent: AgentRecord, tools: AgentTools, allowed: list[str]
) -> Callable[[str], bool]:
    """Which calls wait for a human. A broadcast reply cannot wait: its calls are refused instead."""

    def held(name: str) -> bool:
        return call.reply_to is None and name in allowed and Toolbox.needs_approval(agent, tools, name)

    return held


def _tool_return(
    turn: AgentTurn, tool_call_id: str, content: str, status: str, outcome: ToolOutcome | None = None
) -> dict[str, Any]:
    return turn.append(
        "tool_return_message",
        tool_return=content,
        status=status,
        tool_call_id=tool_call_id,
        stdout=outcome.stdout if outcome is not None else None,
        stderr=outcome.stderr if outcome is not None else None,
    )


def _pending_dict(pending: PendingTool) -> dict[str, Any]:
    return {"tool_call_id": pending.tool_call_id, "name": pending.name, "arguments": dict(pending.arguments)}
