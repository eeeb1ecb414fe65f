"""Whoever has read a run's `[DONE]` finds the run ended: terminal when polled, its group free.

A chat client sends its next message as soon as a stream ends, and a poller
reads the run as soon as a follow-up stream ends. The log's `[DONE]` and the
run record's terminal status are written in one store transaction
(`Store.end_log`), so neither can meet the finished run still `running`. The
fault injected here: a store that is slow to write run records (and to
release groups); before the ending was one write, these clients got a
`running` run and a 409 from their own finished run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.store.base import Store
from chorus.store.records import RunRecord
from chorus.store.sqlite import SQLiteStore
from support import create_agent, create_group, parse_sse, payloads

SLOW_S = 0.3


class SlowRecordWrites:
    """The real store, but a terminal run record or a group release takes `SLOW_S` to write."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.slowed = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
        if run.is_terminal:
            self.slowed += 1
            await asyncio.sleep(SLOW_S)
        return await self.inner.update_run(run, expect_version=expect_version)

    async def release_group(self, tenant_id: str, group_id: str, run_id: str) -> None:
        self.slowed += 1
        await asyncio.sleep(SLOW_S)
        await self.inner.release_group(tenant_id, group_id, run_id)


@pytest.fixture
async def client(make_app: Callable[..., FastAPI], settings: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(store=SlowRecordWrites(SQLiteStore(settings.db_path)))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=30) as c:
            yield c


async def _group(client: httpx.AsyncClient) -> str:
    agents = [await create_agent(client, name, tokens=3) for name in ("Ada", "Brook")]
    return str((await create_group(client, [a["id"] for a in agents]))["id"])


async def _finished_run(client: httpx.AsyncClient, group_id: str, how: str) -> str:
    """Send one message `how` a client would, and return the run's id once its end has been read."""
    url = f"/v1/groups/{group_id}/messages"
    if how == "async":
        run_id = str((await client.post(f"{url}/async", json={"input": "hi"})).json()["id"])
        resumed = parse_sse((await client.post(f"/v1/runs/{run_id}/stream", json={})).text)
        assert resumed[-1].data == "[DONE]"
        return run_id
    if how == "buffered":
        body = (await client.post(url, json={"input": "hi"})).json()
        return str(body["usage"]["run_ids"][0])
    body = {"input": "hi", "stream_tokens": True, "background": how == "background"}
    events = parse_sse((await client.post(f"{url}/stream", json=body)).text)
    assert events[-1].data == "[DONE]"
    return str(payloads(events)[0]["run_id"])


@pytest.mark.parametrize("how", ["stream", "background", "buffered", "async"])
async def test_a_run_whose_end_was_read_is_terminal_and_its_group_free(client: httpx.AsyncClient, how: str) -> None:
    group_id = await _group(client)
    run_id = await _finished_run(client, group_id, how)
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert (run["status"], run["stop_reason"]) == ("completed", "end_turn")
    assert run["total_duration_ns"] > 0
    assert (await client.get(f"/v1/runs/{run_id}/usage")).json()["total_tokens"] > 0
    listed = (await client.get("/v1/runs", params={"group_id": group_id})).json()
    assert [r["status"] for r in listed if r["id"] == run_id] == ["completed"]
    following = await client.post(f"/v1/groups/{group_id}/messages", json={"input": "and then?"})
    assert following.status_code == 200, following.text


async def test_a_finished_run_leaves_no_task_behind(client: httpx.AsyncClient) -> None:
    """Its log's flusher, its heartbeat and its driver all end with it."""
    group_id = await _group(client)
    for how in ("stream", "background", "buffered"):
        run_id = await _finished_run(client, group_id, how)
        for _ in range(100):  # the worker finishes its last writes after the response has ended
            left = [t.get_name() for t in asyncio.all_tasks() if run_id in t.get_name() and not t.done()]
            if not left:
                break
            await asyncio.sleep(0.01)
        assert left == [], how
