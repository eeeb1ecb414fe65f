"""The tracing port: spans of a run, its rounds, agent turns, model calls and tool calls.

Tracing is off by default and then costs one attribute lookup per call site:
`tracer()` answers `NO_TRACING`, whose spans are one shared object that
records nothing, and nothing of OpenTelemetry is imported. With
`OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set,
or `CHORUS_OTEL=on`, the first call imports `chorus.otel`, the adapter that
exports over OTLP/HTTP with the OpenTelemetry SDK (the `otel` extra).

A run is one trace whichever processes execute it. Its root span's W3C
`traceparent` is chosen when the run is created and stored on the run
record (`RunRecord.traceparent`); every process that works on the run (the
in-process driver, a recovering worker, the workflow's Plan, Step and Finish
tasks, which receive it in their task input) opens its spans as children of
it, and whoever ends the run emits the root span itself, spanning the run's
life from its creation (`end_run`). Spans below the first level find their
parent through the context (`contextvars`), so a call site is one line.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Mapping
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from collections.abc import Sized

    from chorus.llm.base import Model, ModelEvent, ModelRequest
    from chorus.store.records import AgentRecord, RunRecord

__all__ = ["NO_TRACING", "Attributes", "Span", "Tracing", "install", "tracer", "wanted"]

Attributes = Mapping[str, str | int | float | bool | None]
"""Span attributes; a None value is left out."""

OtelSetting = Literal["auto", "on", "off"]

# attribute names shared by the call sites and the adapter
RUN_ID = "chorus.run_id"
TENANT_ID = "chorus.tenant_id"
GROUP_ID = "chorus.group_id"
ROUND = "chorus.round"
CALL = "chorus.call"
STOP_REASON = "chorus.stop_reason"
PURPOSE = "chorus.purpose"
"""Of a model call: a step of a turn, or the call that summarises old history."""
OPERATION = "gen_ai.operation.name"
AGENT_ID = "gen_ai.agent.id"
AGENT_NAME = "gen_ai.agent.name"
CONVERSATION_ID = "gen_ai.conversation.id"
TOOL_NAME = "gen_ai.tool.name"
TOOL_CALL_ID = "gen_ai.tool.call.id"


class Span(Protocol):
    """An open span: what a call site adds to it while it runs."""

    def set(self, attributes: Attributes) -> None:
        """Add attributes (a stop reason, a count known only at the end)."""

    def fail(self, description: str) -> None:
        """Mark the span failed (status ERROR) with why; an exception escaping the span does this itself."""


class Tracing(Protocol):
    """Where spans go: nowhere (`NO_TRACING`) or an OpenTelemetry exporter (`chorus.otel.OtelTracing`)."""

    def new_trace(self) -> str | None:
        """The `traceparent` of a new run's root span, to store on its record (None: not tracing)."""

    def span(
        self, name: str, attributes: Attributes, *, parent: str | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        """A span around the block, current inside it: a child of `parent` (a run's `traceparent`)
        if given, else of the current span. Run, group, tenant and agent ids pass to its children."""

    def model_call(self, model: Model, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """`model.stream(request)` inside a `chat` span that records the usage and finish reason streamed."""

    def end_run(self, run: RunRecord) -> None:
        """Emit the root span of an ended run (from its creation to now, with its stop reason)."""

    def flush(self) -> None:
        """Export what is pending (a Lambda invocation's end, before the environment freezes)."""


class _NoSpan:
    def set(self, attributes: Attributes) -> None:
        return None

    def fail(self, description: str) -> None:
        return None


class NoTracing:
    """Records nothing; every span is the same object and its context manager does no work."""

    _span = _NoSpan()

    def new_trace(self) -> str | None:
        return None

    def span(
        self, name: str, attributes: Attributes, *, parent: str | None = None
    ) -> contextlib.AbstractContextManager[Span]:
        return _NULL

    def model_call(self, model: Model, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        return model.stream(request)

    def end_run(self, run: RunRecord) -> None:
        return None

    def flush(self) -> None:
        return None


_NULL = contextlib.nullcontext(NoTracing._span)
NO_TRACING = NoTracing()

_installed: Tracing | None = None


def run_attributes(run: RunRecord) -> dict[str, str | None]:
    """The ids every span of `run` carries."""
    return {RUN_ID: run.id, TENANT_ID: run.tenant_id, GROUP_ID: run.group_id, CONVERSATION_ID: run.group_id}


def round_span(run: RunRecord, index: int, calls: Sized) -> tuple[str, Attributes]:
    """A round of an in-process run: one manager decision's calls."""
    return "chorus.round", {**run_attributes(run), ROUND: index, "chorus.calls": len(calls)}


def task_span(task: str, event: Mapping[str, object]) -> tuple[str, Attributes]:
    """One task of the run workflow, from its input (`WorkflowState` or `StepInput`)."""

    def scalar(key: str) -> str | int | None:
        value = event.get(key)
        return value if isinstance(value, str | int) and not isinstance(value, bool) else None

    attributes: dict[str, str | int | None] = {
        RUN_ID: scalar("run_id"),
        TENANT_ID: scalar("tenant_id"),
        ROUND: scalar("round"),
        CALL: scalar("call"),
    }
    return f"chorus.{task}", attributes


def turn_span(agent: AgentRecord, index: int, call: int) -> tuple[str, Attributes]:
    """One agent turn (`invoke_agent`): model steps and tool calls until the agent is done."""
    return f"invoke_agent {agent.name}", {
        OPERATION: "invoke_agent",
        AGENT_ID: agent.id,
        AGENT_NAME: agent.name,
        ROUND: index,
        CALL: call,
    }


def turn_ended(span: Span, stop_reason: str, error: str | None) -> None:
    span.set({STOP_REASON: stop_reason})
    if error is not None:
        span.fail(error)


def tool_span(name: str, call_id: str) -> tuple[str, Attributes]:
    return f"execute_tool {name}", {OPERATION: "execute_tool", TOOL_NAME: name, TOOL_CALL_ID: call_id or None}


def wanted(setting: OtelSetting, environ: Mapping[str, str]) -> bool:
    """Whether to trace: `on`, or `auto` with an OTLP endpoint configured; never with `OTEL_SDK_DISABLED`."""
    if setting == "off" or environ.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return False
    if setting == "on":
        return True
    return bool(environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))


def tracer() -> Tracing:
    """The process's tracing, chosen from the settings and environment on first use."""
    global _installed
    if _installed is None:
        from chorus.settings import get_settings

        if wanted(get_settings().otel, os.environ):
            from chorus.otel import OtelTracing

            _installed = OtelTracing.exporting()
        else:
            _installed = NO_TRACING
    return _installed


def install(tracing: Tracing | None) -> None:
    """Use `tracing` from now on (tests: an in-memory exporter); None chooses again from the environment."""
    global _installed
    _installed = tracing
