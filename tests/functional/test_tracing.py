"""OpenTelemetry traces of in-process runs, read from an in-memory exporter.

One trace per run: its root span (`chorus.run`) is emitted when the run
ends, with ids chosen at its creation, and everything the run did hangs
under it: rounds, agent turns (`invoke_agent`), model calls (`chat`) and
tool calls (`execute_tool`), each with the GenAI semantic conventions'
attributes and the run's ids. Failures are spans with status ERROR.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import StatusCode

from chorus import tracing
from chorus.store.base import Store
from chorus.tenancy import ANONYMOUS_TENANT
from support import create_agent, create_group, payloads, stream
from support.tracing import Spans, parent_of, spans

__all__ = ["spans"]

APPEND = "core_memory_append"
REPLACE = "core_memory_replace"


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


async def ada_with_tools(client: httpx.AsyncClient) -> dict[str, object]:
    calls = [
        {"name": APPEND, "arguments": {"label": "human", "content": "Likes tea."}},
        {"name": REPLACE, "arguments": {"label": "human", "old_content": "absent", "new_content": "x"}},
    ]
    body = {
        "name": "Ada",
        "model": "scripted/default",
        "memory_blocks": [{"label": "human", "value": "Name: Bo"}],
        "metadata": {"scripted": {"calls": calls, "replies": ["Noted."]}},
    }
    response = await client.post("/v1/agents", json=body)
    assert response.status_code == 200, response.text
    agent: dict[str, object] = response.json()
    return agent


@pytest.mark.both_stores
async def test_a_run_is_one_trace_of_rounds_turns_model_and_tool_calls(
    api: tuple[httpx.AsyncClient, Store], spans: Spans
) -> None:
    client, store = api
    ada = await ada_with_tools(client)
    bob = await create_agent(client, "Bob", tokens=3)
    group = await create_group(client, [str(ada["id"]), bob["id"]])
    events = payloads(await stream(client, group["id"], {"input": "I like tea."}))
    run_id = events[0]["run_id"]
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    trace_id = run["trace_id"]
    stored = await store.get_run(ANONYMOUS_TENANT, run_id)
    assert stored.traceparent is not None and stored.traceparent.split("-")[1] == trace_id

    root = await spans.root(trace_id)
    trace = spans.of_trace(trace_id)
    assert trace == [s for s in spans.all() if attrs(s).get(tracing.RUN_ID) == run_id], "one trace per run"
    assert root.parent is None and root.status.status_code is not StatusCode.ERROR
    assert attrs(root)[tracing.OPERATION] == "invoke_workflow"
    assert attrs(root)[tracing.STOP_REASON] == "end_turn" and attrs(root)["chorus.status"] == "completed"
    assert attrs(root)[tracing.GROUP_ID] == group["id"] == attrs(root)[tracing.CONVERSATION_ID]
    assert attrs(root)["gen_ai.usage.output_tokens"] == events[-1]["completion_tokens"] > 0
    rounds = spans.named("chorus.round", trace)
    assert [attrs(r)[tracing.ROUND] for r in sorted(rounds, key=lambda s: s.start_time or 0)] == [1, 2]
    assert all(parent_of(r, trace) is root for r in rounds)

    turns = spans.named("invoke_agent", trace)
    assert sorted(t.name for t in turns) == ["invoke_agent Ada", "invoke_agent Bob"]
    for turn in turns:
        assert parent_of(turn, trace) in rounds
        assert attrs(turn)[tracing.OPERATION] == "invoke_agent"
        assert attrs(turn)[tracing.STOP_REASON] == "end_turn"
    ada_turn = next(t for t in turns if attrs(t)[tracing.AGENT_NAME] == "Ada")
    assert attrs(ada_turn)[tracing.AGENT_ID] == ada["id"]

    chats = spans.named("chat ", trace)
    assert len(chats) == 3, "Ada: a step with tool calls, then her reply; Bob: one step"
    for chat in chats:
        a = attrs(chat)
        assert parent_of(chat, trace) in turns
        assert a[tracing.OPERATION] == "chat" and a["gen_ai.request.model"] == "default"
        assert a["gen_ai.provider.name"] == "scripted"
        assert isinstance(a["gen_ai.usage.input_tokens"], int) and isinstance(a["gen_ai.usage.output_tokens"], int)
        assert a[tracing.RUN_ID] == run_id and a[tracing.GROUP_ID] == group["id"] and tracing.TENANT_ID in a
    assert sum(int(attrs(c)["gen_ai.usage.output_tokens"]) for c in chats) == events[-1]["completion_tokens"]
    assert {tuple(attrs(c)["gen_ai.response.finish_reasons"]) for c in chats} == {("tool_use",), ("end_turn",)}

    tools = sorted(spans.named("execute_tool", trace), key=lambda s: s.start_time or 0)
    assert [t.name for t in tools] == [f"execute_tool {APPEND}", f"execute_tool {REPLACE}"]
    calls = [e["tool_call"]["tool_call_id"] for e in events if e["message_type"] == "tool_call_message"]
    assert [attrs(t)[tracing.TOOL_CALL_ID] for t in tools] == calls
    assert all(parent_of(t, trace) is ada_turn and attrs(t)[tracing.AGENT_NAME] == "Ada" for t in tools)
    assert tools[0].status.status_code is not StatusCode.ERROR
    assert tools[1].status.status_code is StatusCode.ERROR and "not found" in (tools[1].status.description or "")


async def test_a_model_failure_is_an_error_on_the_model_turn_and_run_spans(
    client: httpx.AsyncClient, spans: Spans
) -> None:
    ada = await create_agent(client, "Ada", tokens=4, error="llm_api_error", error_after_tokens=2)
    group = await create_group(client, [ada["id"]])
    events = payloads(await stream(client, group["id"], {"input": "hi"}))
    run_id = next(e["run_id"] for e in events if "run_id" in e)
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "failed"
    root = await spans.root(run["trace_id"])
    trace = spans.of_trace(run["trace_id"])
    (chat,) = spans.named("chat ", trace)
    (turn,) = spans.named("invoke_agent", trace)
    assert chat.status.status_code is StatusCode.ERROR and "scripted llm_api_error" in (chat.status.description or "")
    assert [e.name for e in chat.events] == ["exception"]
    assert turn.status.status_code is StatusCode.ERROR
    assert root.status.status_code is StatusCode.ERROR and attrs(root)[tracing.STOP_REASON] == run["stop_reason"]


async def test_a_cancelled_run_is_stopped_not_failed(client: httpx.AsyncClient, spans: Spans) -> None:
    ada = await create_agent(client, "Ada", tokens=50, delay_s=0.02)
    group = await create_group(client, [ada["id"]])
    started = await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
    run_id = started.json()["id"]
    cancel = await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    assert cancel.status_code == 200, cancel.text
    await client.post(f"/v1/runs/{run_id}/stream", json={})  # follows the run to its `[DONE]`
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled"
    root = await spans.root(run["trace_id"])
    assert attrs(root)[tracing.STOP_REASON] == "cancelled" and root.status.status_code is not StatusCode.ERROR


async def test_tracing_off_adds_nothing_to_the_run(make_app: Callable[..., FastAPI]) -> None:
    tracing.install(None)
    assert tracing.tracer() is tracing.NO_TRACING, "no OTLP endpoint in the test environment: tracing is off"
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            ada = await create_agent(client, "Ada", tokens=2)
            group = await create_group(client, [ada["id"]])
            events = payloads(await stream(client, group["id"], {"input": "hi"}))
            run_id = events[0]["run_id"]
            run = (await client.get(f"/v1/runs/{run_id}")).json()
            stored = await app.state.services.store.get_run(ANONYMOUS_TENANT, run_id)
    assert "trace_id" not in run and stored.traceparent is None


@pytest.mark.parametrize(
    ("setting", "environ", "on"),
    [
        ("auto", {}, False),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ("auto", {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ("auto", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://x", "OTEL_SDK_DISABLED": "true"}, False),
        ("on", {}, True),
        ("off", {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, False),
    ],
)
def test_when_tracing_is_on(setting: tracing.OtelSetting, environ: dict[str, str], on: bool) -> None:
    assert tracing.wanted(setting, environ) is on


async def test_a_summary_is_its_own_model_call_span_in_the_turn_that_made_it(
    client: httpx.AsyncClient, spans: Spans
) -> None:
    agents = []
    for name in ("Ada", "Bob"):
        body = {"name": name, "model": "scripted/default", "context_window_limit": 600}
        agents.append((await client.post("/v1/agents", json=body)).json()["id"])
    group = await create_group(client, agents)
    for i in range(12):
        events = payloads(await stream(client, group["id"], {"input": f"message {i}: let us talk it over"}))
        summaries = [e["summary"] for e in events if e["message_type"] == "ping" and "summary" in e]
        if summaries:
            break
    else:
        pytest.fail("no summary in 12 sends to a 600-token window")
    run = (await client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    await spans.root(run["trace_id"])
    trace = spans.of_trace(run["trace_id"])
    chats = spans.named("chat ", trace)
    (summary,) = [c for c in chats if attrs(c)[tracing.PURPOSE] == "summary"]
    assert all(attrs(c)[tracing.PURPOSE] == "step" for c in chats if c is not summary)
    turn = parent_of(summary, trace)
    assert turn is not None and turn.name.startswith("invoke_agent ")
    assert attrs(turn)[tracing.AGENT_ID] == summaries[0]["sender_id"], "under the turn of the agent that summarised"
    a = attrs(summary)
    assert a[tracing.OPERATION] == "chat" and a[tracing.RUN_ID] == run["id"]
    assert int(a["gen_ai.usage.input_tokens"]) > 0 and int(a["gen_ai.usage.output_tokens"]) > 0
