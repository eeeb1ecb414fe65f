"""Traces as a user's OpenTelemetry backend would receive them, kept in memory (`spans` fixture)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from chorus import tracing
from chorus.otel import OtelTracing


class NotifyingExporter(InMemorySpanExporter):
    """Keeps spans in memory and wakes whoever waits for one (spans end on the loop or on moto's threads)."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = threading.Condition()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = super().export(spans)
        with self.changed:
            self.changed.notify_all()
        return result


@dataclass
class Spans:
    """The spans exported so far, with the questions the tests ask of them."""

    exporter: NotifyingExporter
    tracing: OtelTracing

    async def root(self, trace_id: str, timeout_s: float = 30.0) -> ReadableSpan:
        """The root span of the run traced as `trace_id`, once exported: whoever ends a run emits it
        after writing `[DONE]`, so a client that read `[DONE]` may be a moment ahead of it."""

        def wait() -> None:
            with self.exporter.changed:
                self.exporter.changed.wait_for(lambda: self.named("chorus.run", self.of_trace(trace_id)), timeout_s)

        await asyncio.to_thread(wait)
        (root,) = self.named("chorus.run", self.of_trace(trace_id))
        return root

    def all(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    def named(self, prefix: str, within: Sequence[ReadableSpan] | None = None) -> list[ReadableSpan]:
        return [s for s in (self.all() if within is None else within) if s.name.startswith(prefix)]

    def of_trace(self, trace_id: str) -> list[ReadableSpan]:
        return [s for s in self.all() if s.context is not None and f"{s.context.trace_id:032x}" == trace_id]


def parent_of(span: ReadableSpan, spans: Sequence[ReadableSpan]) -> ReadableSpan | None:
    """The span `span` is a child of, among `spans`."""
    if span.parent is None:
        return None
    return next((s for s in spans if s.context is not None and s.context.span_id == span.parent.span_id), None)


@pytest.fixture
def spans() -> Iterator[Spans]:
    """Tracing on for the test, every span exported at once into memory."""
    exporter = NotifyingExporter()
    otel = OtelTracing(SimpleSpanProcessor(exporter))
    tracing.install(otel)
    try:
        yield Spans(exporter, otel)
    finally:
        tracing.install(None)
        otel.shutdown()
