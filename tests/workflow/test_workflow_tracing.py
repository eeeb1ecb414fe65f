"""A run on Step Functions is one trace: Plan, Step and Finish, each in its own Lambda invocation,
open their spans under the run's root, whose `traceparent` travels in the task input."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from chorus import tracing
from support import create_agent, create_group
from support.tracing import Spans, parent_of, spans
from support.workflow_harness import Harness, background

__all__ = ["spans"]


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def test_plan_step_and_finish_spans_share_the_runs_trace(harness: Harness, spans: Spans) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=3)
    bob = await create_agent(h.client, "Bob", tokens=3)
    group = await create_group(h.client, [ada["id"], bob["id"]])
    events = await background(h, group["id"])
    run_id = events[0]["run_id"]
    await h.settle()
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    root = await spans.root(run["trace_id"])
    trace = spans.of_trace(run["trace_id"])

    traceparents = {event.get("traceparent") for _, event in h.faults.calls}
    assert len(traceparents) == 1 and None not in traceparents, "every task's input carries the run's traceparent"
    assert attrs(root)[tracing.STOP_REASON] == "end_turn" and attrs(root)["chorus.background"] is True
    tasks = [s for s in trace if s.name in ("chorus.plan", "chorus.step", "chorus.finish")]
    assert sorted(s.name for s in tasks) == ["chorus.finish"] + ["chorus.plan"] * 3 + ["chorus.step"] * 2
    assert all(parent_of(s, trace) is root and attrs(s)[tracing.RUN_ID] == run_id for s in tasks)
    steps = sorted(spans.named("chorus.step", trace), key=lambda s: attrs(s)[tracing.ROUND])
    assert [(attrs(s)[tracing.ROUND], attrs(s)[tracing.CALL]) for s in steps] == [(1, 0), (2, 0)]
    turns = spans.named("invoke_agent", trace)
    assert [parent_of(t, trace) for t in sorted(turns, key=lambda s: s.start_time or 0)] == steps
    chats = spans.named("chat ", trace)
    assert len(chats) == 2 and all(parent_of(c, trace) in turns for c in chats)
    assert all(s.status.status_code is not StatusCode.ERROR for s in trace)
    assert {s.resource.attributes["service.name"] for s in trace} == {"chorus"}
