"""A supervisor's fan-out past its workers' windows: the workers of a round write one summary of a
range between them, not one each (`chorus.runs.shared_summaries`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.tokens import answer_reserve, count_request
from support import Recorder, create_group, payloads, serving, stream

WORKERS = ("Ada", "Bo", "Cy")
WINDOW = 600
"""The workers' window; the supervisor's is large, so it never summarises before the fan-out."""


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(make_app: Callable[..., FastAPI], recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(make_app(resolver=recorder)) as c:
        yield c


async def _supervisor(client: httpx.AsyncClient) -> dict[str, Any]:
    ids = []
    for name in ("Boss", *WORKERS):
        window = 100_000 if name == "Boss" else WINDOW
        body = {"name": name, "system": f"You are {name}.", "model": "scripted/default", "context_window_limit": window}
        response = await client.post("/v1/agents", json=body)
        assert response.status_code == 200, response.text
        ids.append(response.json()["id"])
    return await create_group(client, ids[1:], {"manager_type": "supervisor", "manager_agent_id": ids[0]})


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
    summariser_calls = [r for name in WORKERS for r in recorder.requests[name] if r.purpose == "summary"]
    assert len(summariser_calls) == len(ranges) == notices, "one summariser call and one notice per summary"
    budget = WINDOW - answer_reserve(WINDOW)
    steps = [r for name in WORKERS for r in recorder.requests[name] if r.purpose == "step"]
    assert max(count_request(r) for r in steps) <= budget, "a worker that waited for the summary used it"
