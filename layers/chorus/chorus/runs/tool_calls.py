"""Answering a step's tool calls, and what opens a resumed turn.

After the model's answer, every tool call it made is answered here, in order: built-in and
custom tools run (through the run's `Toolbox`) and their returns join the step; a call of a
tool the agent may not call now is answered with an error; a call of an orchestrated tool
(the supervisor's broadcast) is not run but returned, for the manager to plan, and ends the
turn; a legacy agent's speech call is answered as the message it is. A turn resumed after
a human's answers, or after an orchestrated tool's work, opens with those returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from chorus.engine.managers import AgentCall, PendingTool
from chorus.engine.step import AgentStep, StepOutcome, speech_of
from chorus.engine.tools import ORCHESTRATED, tool_arguments
from chorus.llm.base import ToolCallRequest
from chorus.runs.steps import StepSink
from chorus.runs.toolbox import AgentTools, Toolbox, ToolOutcome
from chorus.schemas.requests import Approval, ApprovalReturn, ToolReturn
from chorus.store.records import AgentRecord, HeldCall


@dataclass(frozen=True, slots=True)
class Answers:
    """A human's answers to the tool calls a paused turn waits on (the approvals flow).

    `calls` are the pending calls; `answers` the request's: a human's decision
    (`ApprovalReturn`) or a client-side tool's return (`ToolReturn`) for each call."""

    calls: tuple[HeldCall, ...]
    answers: tuple[Approval, ...]


@dataclass(slots=True)
class TurnState:
    """A turn's state as its steps go by."""

    history: list[dict[str, Any]]
    step: int
    text: str
    current: AgentStep | None = None
    """The step in flight, whose partial output a failure marks abandoned."""
    called: list[str] = field(default_factory=list)
    """Tools run in this turn, in order (what tool rules look at)."""
    accepted: set[str] = field(default_factory=set)
    nudge: str | None = None
    """Said to the model at the next step only (a tool it must still call)."""

    def ran(self, name: str) -> None:
        self.called.append(name)
        self.accepted.add(name)


async def run_tool(
    toolbox: Toolbox | None, agent: AgentRecord, tools: AgentTools, name: str, arguments: str, call_id: str
) -> ToolOutcome:
    parsed = tool_arguments(arguments)
    if parsed is None:
        return ToolOutcome(_not_an_object(name, arguments), "error")
    if toolbox is None:
        return ToolOutcome(f"Tool {name!r} cannot run here.", "error")
    return await toolbox.run(agent, tools, name, parsed, call_id)


def answer_speech(
    speech: tuple[str, str] | None, outcome: StepOutcome, step: AgentStep, sink: StepSink, state: TurnState
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
            sink.emit(tool_return(step, said.id, f"{speech[0]} needs a string {speech[1]!r} argument.", "error"))
            continue
        sink.emit(tool_return(step, said.id, "Sent message successfully.", "success"))
        state.text += text
        spoke = True
    return spoke, handled


async def open_resumed(
    toolbox: Toolbox | None,
    call: AgentCall,
    agent: AgentRecord,
    tools: AgentTools,
    step: AgentStep,
    sink: StepSink,
    state: TurnState,
    answers: Answers | None,
) -> None:
    """What opens a resumed turn: an orchestrated tool's return, or the human's answers."""
    if call.tool_return is not None:
        ret = call.tool_return
        sink.emit(tool_return(step, ret.tool_call_id, ret.content, ret.status))
    if answers is None:
        return
    first = answers.answers[0]
    decided = first if isinstance(first, ApprovalReturn) else None
    sink.emit(
        step.append(
            "approval_response_message",
            approvals=[a.model_dump(mode="json") for a in answers.answers],
            approve=decided.approve if decided is not None else None,
            approval_request_id=first.tool_call_id,
            reason=decided.reason if decided is not None else None,
        )
    )
    by_id = {a.tool_call_id: a for a in answers.answers}
    for pending in answers.calls:
        answer = by_id[pending.tool_call_id]
        if isinstance(answer, ToolReturn):
            outcome = ToolOutcome(answer.tool_return, answer.status, answer.stdout, answer.stderr)
        elif answer.approve:
            outcome = await run_tool(toolbox, agent, tools, pending.name, pending.arguments, pending.tool_call_id)
            state.ran(pending.name)
        else:
            reason = answer.reason or "none given"
            outcome = ToolOutcome(f"Error: request to call tool denied. User reason: {reason}", "error")
        sink.emit(tool_return(step, pending.tool_call_id, outcome.content, outcome.status, outcome))


async def answer_tool_calls(
    toolbox: Toolbox | None,
    call: AgentCall,
    agent: AgentRecord,
    tools: AgentTools,
    allowed: list[str],
    step: AgentStep,
    requests: Sequence[ToolCallRequest],
    sink: StepSink,
    state: TurnState,
) -> PendingTool | None:
    """Answer the step's tool calls; returns the orchestrated call the turn stops at, if any."""
    pending: PendingTool | None = None
    for request in requests:
        if request.name not in allowed:
            names = ", ".join(sorted(allowed)) or "none"
            error = f"Tool {request.name!r} is not available to this agent now (tools allowed: {names})."
            sink.emit(tool_return(step, request.id, error, "error"))
            continue
        if call.reply_to is not None and Toolbox.needs_approval(agent, tools, request.name):
            error = f"Tool {request.name!r} needs a human's approval, which a broadcast reply cannot wait for."
            sink.emit(tool_return(step, request.id, error, "error"))
            continue
        if request.name in ORCHESTRATED:
            arguments = tool_arguments(request.arguments)
            if arguments is None:
                sink.emit(tool_return(step, request.id, _not_an_object(request.name, request.arguments), "error"))
            elif pending is None:
                pending = PendingTool(request.id, request.name, arguments)
            else:
                error = f"Only one {request.name!r} call per step is carried out; this one was not."
                sink.emit(tool_return(step, request.id, error, "error"))
            continue
        outcome = await run_tool(toolbox, agent, tools, request.name, request.arguments, request.id)
        state.ran(request.name)
        sink.emit(tool_return(step, request.id, outcome.content, outcome.status, outcome))
    return pending


def approval_policy(
    call: AgentCall, agent: AgentRecord, tools: AgentTools, allowed: list[str]
) -> Callable[[str], bool]:
    """Which calls wait for a human. A broadcast reply cannot wait: its calls are refused instead."""

    def held(name: str) -> bool:
        return call.reply_to is None and name in allowed and Toolbox.needs_approval(agent, tools, name)

    return held


def tool_return(
    step: AgentStep, tool_call_id: str, content: str, status: str, outcome: ToolOutcome | None = None
) -> dict[str, Any]:
    return step.append(
        "tool_return_message",
        tool_return=content,
        status=status,
        tool_call_id=tool_call_id,
        stdout=outcome.stdout if outcome is not None else None,
        stderr=outcome.stderr if outcome is not None else None,
    )


def _not_an_object(name: str, arguments: str) -> str:
    return f"The arguments of {name!r} must be a JSON object, got {arguments!r}."
