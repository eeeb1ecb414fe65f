"""Compaction, the doing: measure a step's request and, when it leaves no room for the answer, summarise.

The choosing is pure (`chorus.engine.compaction`); this module makes the
summariser's model call and adds the summary to the step: the summary message
becomes the step's first message (committed with it, once, like the rest of
the step), and clients get it at once as a `ping` carrying it under `summary`,
which every Letta client ignores (the SDKs' strict stream validation refuses
unknown message types, but accepts a ping with extra fields). A step that fails
after summarising commits nothing, so its summary is made again by the next
step that needs one. The calls of a parallel round write one summary per range
between them (`chorus.runs.shared_summaries`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chorus.engine.compaction import (
    SUMMARY,
    choose_cut,
    summary_allowance,
    summary_fields,
    summary_request,
    transcript,
)
from chorus.engine.context_cache import Measured
from chorus.engine.step import AgentStep
from chorus.llm.base import Model
from chorus.runs.shared_summaries import Sharing
from chorus.runs.steps import StepSink
from chorus.store.records import AgentRecord
from chorus.tokens import BYTES_PER_TOKEN, answer_reserve, count_fixed
from chorus.tracing import tracer
from chorus.vocabulary import ModelRequest, TextDelta, Usage


def compaction_notice(summary: dict[str, Any]) -> dict[str, Any]:
    """The stream event announcing a new summary: a ping, so clients that do not know it skip it."""
    return {"message_type": "ping", "run_id": summary.get("run_id"), "summary": summary}


def budget_of(agent: AgentRecord) -> int:
    """Tokens a step's request may take: the agent's window less the room kept for the answer."""
    return agent.context_window - answer_reserve(agent.context_window)


async def fit_window(
    *,
    model: Model,
    agent: AgentRecord,
    build: Callable[[], Measured],
    step: AgentStep,
    sink: StepSink,
    cancelled: Callable[[], None],
    budget: int | None = None,
    sharing: Sharing | None = None,
) -> ModelRequest:
    """The step's request, after summarising the oldest history if it did not fit. `build` makes the
    request from the step's history as it stands (with the step's messages so far), measured;
    `budget` is a tighter bound than the agent's window leaves (the provider refused a request);
    `sharing`, in a parallel round, takes the summary of a range another call of it wrote."""
    built = build()
    request, tokens, view = built.request, built.tokens, built.view
    budget = min(budget_of(agent), budget if budget is not None else budget_of(agent))
    if tokens <= budget:
        return request
    fixed = count_fixed(request)
    allowance = summary_allowance(agent.context_window)
    keep = max(0, (budget - fixed - allowance) // 2)
    cut = choose_cut(view.messages, keep)
    if cut == 0:
        return request
    covered = view.messages[:cut]

    async def write() -> dict[str, Any]:
        text, usage = await summarise(
            model,
            summary_request(
                model=request.model,
                agent_id=agent.id,
                agent_name=agent.name,
                previous=view.summary,
                messages=covered,
                max_tokens=allowance,
            ),
            cancelled,
        )
        if not text.strip():
            text = transcript(view.summary, covered)[-allowance * BYTES_PER_TOKEN :]
        step.feed(usage)
        message = step.append(SUMMARY, **summary_fields(text, view.summary, covered, tokens))
        sink.emit(compaction_notice(message))
        return message

    if sharing is None:
        await write()
    else:
        message, wrote = await sharing.summaries.once(sharing.key(view.summary, covered), write)
        if not wrote:
            sharing.adopt(message)
    return build().request


async def summarise(model: Model, request: ModelRequest, cancelled: Callable[[], None]) -> tuple[str, Usage]:
    """The summariser's answer: its text (tool calls and reasoning are ignored) and what it cost. The
    call is traced as the step's are (a `chat` span, its `chorus.purpose` "summary")."""
    parts: list[str] = []
    usage = Usage()
    async for event in tracer().model_call(model, request):
        if isinstance(event, TextDelta):
            parts.append(event.text)
        elif isinstance(event, Usage):
            usage = usage + event
        cancelled()
    return "".join(parts), usage
