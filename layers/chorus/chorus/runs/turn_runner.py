"""One agent turn: model steps, tool calls and their returns, until the agent is done.

A turn is a loop of steps. Each step is one model call pumped through an `AgentStep` fold,
then the tool calls it made (answered in `tool_calls`): built-in tools run here and their
returns join the step; a call of an orchestrated tool (the supervisor's broadcast) ends the
turn, for the manager to plan. The step's messages are committed once, under keys derived
from the turn's place in the run, and the loop goes on while the model calls tools, up to
the request's `max_steps`.

A runner is I/O-free apart from the model stream and the `StepSink` it is given: it emits
each event into the sink as the model yields it and commits each step through it, and
never calls back into whoever drives it, so the in-process driver and a Step Functions
Step task share it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from chorus import tracing
from chorus.engine import events, identity, memory
from chorus.engine.context import Frame
from chorus.engine.context_cache import ContextCache, Measured, shared_contexts
from chorus.engine.managers import AWAITING_TOOL, AgentCall, TurnRecord
from chorus.engine.step import AgentStep, StepContext
from chorus.engine.tool_rules import ToolRules
from chorus.engine.tools import BUILT_IN, LEGACY_AGENT_TYPES, send_message_spec
from chorus.errors import ContextTooLong, ModelError
from chorus.llm.base import Model, Usage
from chorus.runs.compactor import fit_window
from chorus.runs.shared_summaries import SharedSummaries, Sharing
from chorus.runs.steps import Slot, StepCommit, StepSink
from chorus.runs.tool_calls import (
    Answers,
    TurnState,
    answer_speech,
    answer_tool_calls,
    approval_policy,
    open_resumed,
)
from chorus.runs.toolbox import AgentTools, Toolbox
from chorus.store.records import AgentRecord, AwaitingApproval, HeldCall, OrchestratedCall, StepWait
from chorus.tokens import count_request
from chorus.tracing import tracer
from chorus.vocabulary import STOP_AFTER_FINISH, ModelRequest, ToolSpec


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
    toolbox: Toolbox | None = None
    """The agents' memory and custom tools (none: built-in tools only)."""
    speech_tool: tuple[str, str] = ("send_message", "message")
    """The tool and argument legacy agents speak through (`assistant_message_tool_name`/`_kwarg`)."""
    use_assistant_message: bool = True
    """Stream a legacy agent's speech as `assistant_message` (else as the tool call it is)."""
    contexts: ContextCache = field(default_factory=shared_contexts)
    """The agents' rendered contexts kept between steps (and between runs of this process)."""


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
        self.summaries = SharedSummaries()
        """The summaries the parallel calls of this run's rounds write once between them."""

    async def run(
        self,
        call: AgentCall,
        slot: Slot,
        sink: StepSink,
        history: Sequence[dict[str, Any]],
        *,
        resume: Resume | None = None,
        tolerate_failure: bool = False,
        answers: Answers | None = None,
    ) -> TurnRecord:
        """Run the turn to its end, its output into `sink`. With `tolerate_failure` a model
        failure ends the turn (its partial output marked abandoned, its error recorded) instead
        of the run; with `answers` the turn resumes after a human approved or denied its
        pending tool calls."""
        resume = resume or Resume()
        state = TurnState(list(history), resume.steps, resume.text)
        with tracer().span(*tracing.turn_span(self.agents[call.agent_id], slot.round, slot.call)) as span:
            try:
                record = await self._steps(call, slot, sink, state, answers if not resume.steps else None)
            except ModelError as exc:
                if not tolerate_failure:
                    raise
                record = await self._failed(call, slot, sink, state, exc)
            tracing.turn_ended(span, record.stop_reason, record.error)
            return record

    async def _steps(
        self, call: AgentCall, slot: Slot, sink: StepSink, state: TurnState, answers: Answers | None
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
            ctx = StepContext(
                cfg.run_id, key, agent.id, agent.name, events.wire_date(), cfg.stream_tokens, cfg.incarnation
            )
            step = state.current = AgentStep(ctx)
            if state.step == 1:
                await open_resumed(cfg.toolbox, call, agent, tools, step, sink, state, answers)

            def build(step: AgentStep = step, system: str = system, offered: list[ToolSpec] = offered) -> Measured:
                history = [*state.history, *step.messages]
                seen = cfg.contexts.view(agent.tenant_id, agent.id, history, call.hidden_senders, call.context_limit)
                frame = Frame(
                    model.handle.partition("/")[2],
                    agent.id,
                    agent.name,
                    system,
                    offered,
                    call.instruction,
                    state.nudge,
                    agent.reasoning,
                )
                return seen.request(frame)

            sharing = Sharing(self.summaries, slot.round, state.history.append) if slot.calls > 1 else None
            fit = partial(
                fit_window,
                model=model,
                agent=agent,
                build=build,
                step=step,
                sink=sink,
                cancelled=cfg.cancelled,
                sharing=sharing,
            )
            request = await fit()
            try:
                await self._stream(model, request, step, sink)
            except ContextTooLong:
                if step.emitted_ids():
                    raise
                # the provider counted more than the estimate: summarise down to half of what was sent, once
                await self._stream(model, await fit(budget=count_request(request) // 2), step, sink)
            state.nudge = None
            rest, outcome = step.finish(
                approval_policy(call, agent, tools, allowed), speech if cfg.use_assistant_message else None
            )
            for event in rest:
                sink.emit(event)
            spoke, handled = answer_speech(speech, outcome, step, sink, state)
            handled |= {r.id for r in outcome.held}
            unanswered = [r for r in outcome.tool_calls if r.id not in handled]
            pending = await answer_tool_calls(cfg.toolbox, call, agent, tools, allowed, step, unanswered, sink, state)
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
            waits_on: StepWait | None = None
            if pending is not None:
                waits_on = OrchestratedCall(
                    tool_call_id=pending.tool_call_id, name=pending.name, arguments=dict(pending.arguments)
                )
            elif outcome.held:
                held = [HeldCall(tool_call_id=r.id, name=r.name, arguments=r.arguments) for r in outcome.held]
                waits_on = AwaitingApproval(approval=held)
            await sink.commit(
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
            state.current = None
            if final:
                return TurnRecord(agent.id, stop, state.text, call.purpose, pending, call.reply_to)

    async def _stream(self, model: Model, request: ModelRequest, step: AgentStep, sink: StepSink) -> None:
        """Pump the model's answer to `request` through `step`, each event into `sink` as it comes."""
        async for model_event in tracer().model_call(model, request):
            emitted = False
            for event in step.feed(model_event):
                sink.emit(event)
                emitted = True
            if self.cancel.is_set():
                self.settings.cancelled()
            if emitted:
                # a provider's chunks often arrive several to a read, and the SDK then hands them
                # over without suspending: without this turn the log's writer and the stream's
                # reader would not run until the step's end, so a reader waited for the whole step
                await asyncio.sleep(0)

    async def _failed(
        self, call: AgentCall, slot: Slot, sink: StepSink, state: TurnState, exc: ModelError
    ) -> TurnRecord:
        key = identity.step_key(slot.round, slot.call, state.step)
        step = state.current
        if step is not None and step.emitted_ids():
            sink.emit(
                events.abandoned_attempt(
                    run_id=self.settings.run_id,
                    step_id=step.step_id,
                    message_ids=step.emitted_ids(),
                    reason=f"the model failed: {exc.detail}",
                )
            )
        error = f"The model failed: {exc.detail}"
        await sink.commit(
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
