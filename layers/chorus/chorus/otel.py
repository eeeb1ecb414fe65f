"""The OpenTelemetry adapter of the tracing port (`chorus.tracing`): spans exported over OTLP/HTTP.

Imported only when tracing is on, so the API and the workflow's tasks import
no OpenTelemetry otherwise. It owns its `TracerProvider` (the process's
global provider is left to whoever configured it) and names spans and
attributes after the GenAI semantic conventions:

- `chorus.run`, the run's root span (`gen_ai.operation.name=invoke_workflow`),
  from the run's creation to its end, with its status, stop reason and tokens;
- `chorus.round` (in process) or `chorus.plan` / `chorus.step` / `chorus.finish`
  (the workflow's tasks), children of the root;
- `invoke_agent {agent}`, one agent turn, with its stop reason;
- `chat {model}`, one model call (`gen_ai.request.model`, `gen_ai.provider.name`,
  `gen_ai.usage.input_tokens`/`output_tokens`, `gen_ai.response.finish_reasons`);
- `execute_tool {tool}` (`gen_ai.tool.name`, `gen_ai.tool.call.id`).

Every span carries the run, tenant, group and agent ids of the spans it is
inside. A run's root span has ids chosen when the run was created (its
`traceparent`); the id generator hands them out when `end_run` emits it, so
children opened earlier, in any process, point at it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.trace import (
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    set_span_in_context,
)
from opentelemetry.trace import Span as ApiSpan

from chorus import tracing
from chorus.errors import ChorusError
from chorus.llm.base import Model, ModelEvent, ModelRequest
from chorus.runs.lease import LeaseLost, RunCancelled
from chorus.store.records import RunRecord
from chorus.vocabulary import Finish, Usage

__all__ = ["OtelTracing", "span_context", "traceparent_of"]

INHERITED = (
    tracing.RUN_ID,
    tracing.TENANT_ID,
    tracing.GROUP_ID,
    tracing.CONVERSATION_ID,
    tracing.AGENT_ID,
    tracing.AGENT_NAME,
)
"""Attributes a span passes to the spans opened inside it."""
STOPPED = (asyncio.CancelledError, GeneratorExit, RunCancelled, LeaseLost)
"""What ends a span early without it having failed (a cancelled run, a worker losing its lease)."""

_inherited: ContextVar[dict[str, Any]] = ContextVar("chorus_span_ids", default={})  # noqa: B039 (never mutated)


class RunRootIds(RandomIdGenerator):
    """Random ids, except for a run's root span, whose ids were chosen when the run was created."""

    def __init__(self) -> None:
        self.forced: ContextVar[tuple[int, int] | None] = ContextVar("chorus_root_ids", default=None)

    def generate_trace_id(self) -> int:
        forced = self.forced.get()
        return forced[0] if forced is not None else super().generate_trace_id()

    def generate_span_id(self) -> int:
        forced = self.forced.get()
        return forced[1] if forced is not None else super().generate_span_id()


def span_context(traceparent: str | None) -> SpanContext | None:
    """The span a W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) names; None if it is not one."""
    parts = (traceparent or "").split("-")
    if len(parts) != 4 or len(parts[1]) != 32 or len(parts[2]) != 16 or len(parts[3]) != 2:
        return None
    try:
        trace_id, span_id, flags = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
    except ValueError:
        return None
    if not trace_id or not span_id:
        return None
    return SpanContext(trace_id, span_id, is_remote=True, trace_flags=TraceFlags(flags))


def traceparent_of(context: SpanContext) -> str:
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


def _clean(attributes: tracing.Attributes) -> dict[str, Any]:
    return {k: v for k, v in attributes.items() if v is not None}


def _record(span: ApiSpan, exc: BaseException) -> None:
    """What an exception leaving a span says: stopped (cancel) or failed (status ERROR, the exception event)."""
    if isinstance(exc, STOPPED):
        span.set_attribute("chorus.stopped", type(exc).__name__)
        return
    span.record_exception(exc)
    detail = exc.detail if isinstance(exc, ChorusError) else f"{type(exc).__name__}: {exc}"
    span.set_status(Status(StatusCode.ERROR, detail))


class _Span:
    def __init__(self, span: ApiSpan) -> None:
        self._span = span

    def set(self, attributes: tracing.Attributes) -> None:
        self._span.set_attributes(_clean(attributes))

    def fail(self, description: str) -> None:
        self._span.set_status(Status(StatusCode.ERROR, description))


class OtelTracing:
    """`Tracing` with the OpenTelemetry SDK."""

    def __init__(self, processor: SpanProcessor, *, service_name: str | None = None) -> None:
        self.ids = RunRootIds()
        name = service_name or os.environ.get("OTEL_SERVICE_NAME") or "chorus"
        self.provider = TracerProvider(resource=Resource.create({"service.name": name}), id_generator=self.ids)
        self.provider.add_span_processor(processor)
        self._tracer = self.provider.get_tracer("chorus")

    @classmethod
    def exporting(cls) -> OtelTracing:
        """Batches exported over OTLP/HTTP to `OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT` (the SDK reads its variables)."""
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return cls(BatchSpanProcessor(OTLPSpanExporter()))

    def new_trace(self) -> str | None:
        trace_id, span_id = self.ids.generate_trace_id(), self.ids.generate_span_id()
        return traceparent_of(
            SpanContext(trace_id, span_id, is_remote=False, trace_flags=TraceFlags(TraceFlags.SAMPLED))
        )

    @contextlib.contextmanager
    def span(self, name: str, attributes: tracing.Attributes, *, parent: str | None = None) -> Iterator[tracing.Span]:
        remote = span_context(parent) if parent else None
        context = set_span_in_context(NonRecordingSpan(remote)) if remote is not None else None
        given = _clean(attributes)
        inherited = {**_inherited.get(), **{k: given[k] for k in INHERITED if k in given}}
        token = _inherited.set(inherited)
        try:
            with self._tracer.start_as_current_span(
                name,
                context=context,
                attributes={**inherited, **given},
                record_exception=False,
                set_status_on_exception=False,
            ) as span:
                try:
                    yield _Span(span)
                except BaseException as exc:
                    _record(span, exc)
                    raise
        finally:
            _inherited.reset(token)

    async def model_call(self, model: Model, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        # a generator may be finished in another context than it started in: the span is never made current
        provider, _, name = model.handle.partition("/")
        attributes = {
            **_inherited.get(),
            tracing.OPERATION: "chat",
            "gen_ai.request.model": request.model or name,
            "gen_ai.provider.name": provider,
            tracing.PURPOSE: request.purpose,
        }
        span = self._tracer.start_span(f"chat {request.model or name}", kind=SpanKind.CLIENT, attributes=attributes)
        usage, finish = Usage(), None
        try:
            async for event in model.stream(request):
                if isinstance(event, Usage):
                    usage = usage + event
                elif isinstance(event, Finish):
                    finish = event.reason
                yield event
        except BaseException as exc:
            _record(span, exc)
            raise
        finally:
            span.set_attributes(
                {
                    "gen_ai.usage.input_tokens": usage.prompt_tokens,
                    "gen_ai.usage.output_tokens": usage.completion_tokens,
                }
            )
            if finish is not None:
                span.set_attribute("gen_ai.response.finish_reasons", [finish])
            span.end()

    def end_run(self, run: RunRecord) -> None:
        root = span_context(run.traceparent)
        if root is None:
            return
        usage = run.usage or {}
        attributes = _clean(
            {
                tracing.OPERATION: "invoke_workflow",
                tracing.RUN_ID: run.id,
                tracing.TENANT_ID: run.tenant_id,
                tracing.GROUP_ID: run.group_id,
                tracing.CONVERSATION_ID: run.group_id,
                tracing.STOP_REASON: run.stop_reason,
                "chorus.status": run.status,
                "chorus.background": run.background,
                "gen_ai.usage.input_tokens": usage.get("prompt_tokens"),
                "gen_ai.usage.output_tokens": usage.get("completion_tokens"),
                "chorus.step_count": usage.get("step_count"),
            }
        )
        token = self.ids.forced.set((root.trace_id, root.span_id))
        try:
            span = self._tracer.start_span(
                "chorus.run", context=Context(), attributes=attributes, start_time=_epoch_ns(run.created_at)
            )
        finally:
            self.ids.forced.reset(token)
        if run.status == "failed":
            span.set_status(Status(StatusCode.ERROR, f"stop reason {run.stop_reason}"))
        span.end()

    def flush(self) -> None:
        self.provider.force_flush()

    def shutdown(self) -> None:
        self.provider.shutdown()


def _epoch_ns(iso: str) -> int | None:
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1e9)
    except ValueError:
        return None
