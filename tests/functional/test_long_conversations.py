"""Long conversations: a group that talks far past its agents' context windows keeps working.

Through the ASGI app on both stores, with the offline model, whose usage is
counted the way compaction measures (`chorus.tokens`). Every request a model
was sent is kept (`Recorder`) and measured.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import httpx
import pytest
from fastapi import FastAPI
from letta_client._models import validate_type
from letta_client.types.agents.letta_streaming_response import LettaStreamingResponse
from letta_client.types.agents.message import Message

from chorus.tokens import answer_reserve, count_request
from support import Recorder, create_group, payloads, serving, stream

WINDOW = 600
SENDS = {"sqlite": 70, "dynamodb": 40}
"""Three agents each: 210 turns (120 on moto, whose DynamoDB is slow), many windows' worth."""


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(make_app: Callable[..., FastAPI], recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(make_app(resolver=recorder)) as c:
        yield c


async def _agent(client: httpx.AsyncClient, name: str, **body: Any) -> dict[str, Any]:
    payload = {"name": name, "system": f"You are {name}.", "model": "scripted/default", **body}
    response = await client.post("/v1/agents", json=payload)
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def _history(client: httpx.AsyncClient, group_id: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    after = None
    while True:
        params: dict[str, Any] = {"order": "asc", "limit": 1000, **({"after": after} if after else {})}
        page = (await client.get(f"/v1/groups/{group_id}/messages", params=params)).json()
        out.extend(page)
        if len(page) < 1000:
            return out
        after = page[-1]["id"]


@pytest.mark.both_stores
async def test_hundreds_of_turns_in_a_small_window_all_complete(
    client: httpx.AsyncClient, recorder: Recorder, store_kind: str
) -> None:
    sends = SENDS[store_kind]
    agents = [await _agent(client, n, context_window_limit=WINDOW) for n in ("Ada", "Brook", "Cyd")]
    assert all(a["llm_config"]["context_window"] == WINDOW for a in agents)
    group = await create_group(client, [a["id"] for a in agents])
    notices: list[dict[str, Any]] = []
    for i in range(sends):
        events = payloads(await stream(client, group["id"], {"input": f"message {i} from the human"}))
        for event in events:
            validate_type(type_=cast(Any, LettaStreamingResponse), value=event)  # what a strict Letta client accepts
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
        assert sum(e["message_type"] == "assistant_message" for e in events) == 3
        notices += [e["summary"] for e in events if e["message_type"] == "ping" and "summary" in e]

    budget = WINDOW - answer_reserve(WINDOW)
    steps = [r for rs in recorder.requests.values() for r in rs if r.purpose == "step"]
    summaries = [r for rs in recorder.requests.values() for r in rs if r.purpose == "summary"]
    assert len(steps) == 3 * sends
    assert max(count_request(r) for r in steps) <= budget, "every step's request fit the window"
    assert len(notices) == len(summaries) >= sends // 10, "summaries were made, each announced"
    assert len(summaries) < len(steps) / 2, "a summary is reused by later steps"

    history = await _history(client, group["id"])
    for message in history:
        validate_type(type_=cast(Any, Message), value=message)
    kept = [m for m in history if m["message_type"] != "summary"]
    assert len(kept) == 4 * sends, "the full history stays: every input and every reply"
    stored = [m for m in history if m["message_type"] == "summary"]
    assert [m["id"] for m in stored] == [n["id"] for n in notices]
    ranges = [m["compaction"] for m in stored]
    assert {r["first_message_id"] for r in ranges} == {kept[0]["id"]}, "each summary covers from the start"
    counts = [r["messages"] for r in ranges]
    assert counts == sorted(counts) and counts[-1] < len(kept)
    ids = [m["id"] for m in kept]
    assert [ids.index(r["last_message_id"]) + 1 for r in ranges] == counts, "a summary covers a prefix, no gap"

    last = steps[-1]
    assert last.messages[0].content.startswith(f"[Summary of the {counts[-1]} earlier messages")


async def test_a_tool_exchange_in_flight_is_kept_whole(client: httpx.AsyncClient, recorder: Recorder) -> None:
    supervisor = await _agent(client, "Boss", context_window_limit=WINDOW)
    workers = [await _agent(client, n, context_window_limit=WINDOW) for n in ("Ada", "Brook")]
    config = {"manager_type": "supervisor", "manager_agent_id": supervisor["id"]}
    group = await create_group(client, [w["id"] for w in workers], config)
    for i in range(25):
        events = payloads(await stream(client, group["id"], {"input": f"task {i}: report"}))
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
    boss = [r for r in recorder.requests["Boss"] if r.purpose == "step"]
    assert any(r.messages[0].content.startswith("[Summary of") for r in boss), "the supervisor's context was compacted"
    for request in boss:
        calls = {c.id for m in request.messages for c in m.tool_calls}
        returns = {m.tool_call_id for m in request.messages if m.role == "tool"}
        assert returns <= calls, "no return without its call: a call is never summarised away from its return"


async def test_the_window_is_set_at_create_and_update_and_bounded(client: httpx.AsyncClient) -> None:
    default = await _agent(client, "Plain")
    assert default["llm_config"]["context_window"] == 32_000, "an unknown model gets the setting's window"
    path = f"/v1/agents/{default['id']}"
    changed = (await client.patch(path, json={"context_window_limit": 9_000})).json()
    assert changed["llm_config"]["context_window"] == 9_000
    renamed = (await client.patch(path, json={"name": "Still"})).json()
    assert renamed["llm_config"]["context_window"] == 9_000, "other changes keep it"
    moved = (await client.patch(path, json={"model": "scripted/other"})).json()
    assert moved["llm_config"]["context_window"] == 32_000, "a new model without a limit takes its window"
    for bad in (0, 511, 10_000_001, "big"):
        response = await client.post("/v1/agents", json={"name": "Bad", "context_window_limit": bad})
        assert response.status_code == 422, bad
        assert (await client.patch(path, json={"context_window_limit": bad})).status_code == 422


async def test_the_default_window_is_a_setting(make_app: Callable[..., FastAPI]) -> None:
    async with serving(make_app(settings={"default_context_window": 5_000})) as c:
        unknown = await _agent(c, "Unknown")
        # the window follows the model's name (an offline model named like one, as no provider is configured here)
        known = (await c.post("/v1/agents", json={"name": "Known", "model": "scripted/gpt-4o-mini"})).json()
    assert unknown["llm_config"]["context_window"] == 5_000
    assert known["llm_config"]["context_window"] == 128_000


# A supervisor's fan-out past its workers' windows (whose is WINDOW; the supervisor's is large, so it never
# summarises before the fan-out): the workers of a round write one summary of a range between them, not one
# each (`chorus.runs.shared_summaries`).

FANOUT_WORKERS = ("Ada", "Bo", "Cy")


async def _supervisor(client: httpx.AsyncClient) -> dict[str, Any]:
    boss = await _agent(client, "Boss", context_window_limit=100_000)
    workers = [(await _agent(client, name, context_window_limit=WINDOW))["id"] for name in FANOUT_WORKERS]
    return await create_group(client, workers, {"manager_type": "supervisor", "manager_agent_id": boss["id"]})


@pytest.mark.both_stores
async def test_parallel_workers_write_one_summary_per_range(client: httpx.AsyncClient, recorder: Recorder) -> None:
    group = await _supervisor(client)
    notices = 0
    for i in range(14):
        events = payloads(await stream(client, group["id"], {"input": f"message {i} from the human"}))
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
        notices += sum(e["message_type"] == "ping" and "summary" in e for e in events)

    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"limit": 1000})).json()
    covered = [m["compaction"] for m in history if m["message_type"] == "summary"]
    ranges = [(c["first_message_id"], c["last_message_id"]) for c in covered]
    assert len(ranges) >= 2, "the workers' windows filled more than once"
    assert len(set(ranges)) == len(ranges), "one summary per range"
    summariser_calls = [r for name in FANOUT_WORKERS for r in recorder.requests[name] if r.purpose == "summary"]
    assert len(summariser_calls) == len(ranges) == notices, "one summariser call and one notice per summary"
    budget = WINDOW - answer_reserve(WINDOW)
    steps = [r for name in FANOUT_WORKERS for r in recorder.requests[name] if r.purpose == "step"]
    assert max(count_request(r) for r in steps) <= budget, "a worker that waited for the summary used it"
