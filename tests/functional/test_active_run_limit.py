"""A tenant may have at most `max_active_runs_per_tenant` active runs: beyond it a send is 429 with `Retry-After`.

Sends race across several groups at once (the limit must hold under
concurrency, not only one send at a time), each run waiting on a slow model
so it stays active; exactly the limit's worth are accepted. Another tenant is
not affected, a refused send leaves no run behind and no group held, and a
run that ends frees its slot for the next send.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI

from support import create_agent, create_group

LIMIT = 3
GROUPS = 8
SLOW = {"tokens": 2, "delay_s": 60}  # the longest model wait the scripted model allows


@pytest.fixture
async def limited(make_app: Callable[..., FastAPI]) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Clients of the app per tenant (API keys `key-<tenant>`), the limit set to `LIMIT`."""
    keys = "key-a=tenant-a,key-b=tenant-b"
    app = make_app(settings={"max_active_runs_per_tenant": LIMIT, "api_keys": keys})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        clients: list[httpx.AsyncClient] = []

        def client(tenant: str) -> httpx.AsyncClient:
            c = httpx.AsyncClient(
                transport=transport, base_url="http://127.0.0.1", headers={"Authorization": f"Bearer key-{tenant}"}
            )
            clients.append(c)
            return c

        try:
            yield client
        finally:
            for c in clients:
                await c.aclose()


async def slow_groups(client: httpx.AsyncClient, n: int) -> list[str]:
    agent = await create_agent(client, "Slow", **SLOW)
    return [(await create_group(client, [agent["id"]]))["id"] for _ in range(n)]


@pytest.mark.both_stores
async def test_concurrent_sends_beyond_the_limit_are_429(limited: Callable[[str], httpx.AsyncClient]) -> None:
    a, b = limited("a"), limited("b")
    groups = await slow_groups(a, GROUPS)
    answers = await asyncio.gather(*(a.post(f"/v1/groups/{g}/messages/async", json={"input": "hi"}) for g in groups))
    accepted = [(g, r.json()["id"]) for g, r in zip(groups, answers, strict=True) if r.status_code == 200]
    refused = [r for r in answers if r.status_code != 200]
    assert len(accepted) == LIMIT, [r.status_code for r in answers]
    for r in refused:
        assert r.status_code == 429 and r.headers["Retry-After"].isdigit()
        assert "active runs" in r.json()["detail"]
    active = (await a.get("/v1/runs", params=[("statuses", "created"), ("statuses", "running")])).json()
    assert sorted(run["id"] for run in active) == sorted(run_id for _, run_id in accepted), "refused sends left no run"

    # a refused group is not held: once a slot is free, the same group takes the message
    other_tenant = await slow_groups(b, 1)
    assert (await b.post(f"/v1/groups/{other_tenant[0]}/messages/async", json={"input": "hi"})).status_code == 200
    idle = next(g for g in groups if g not in {g for g, _ in accepted})
    assert (await a.post(f"/v1/groups/{idle}/messages/async", json={"input": "hi"})).status_code == 429
    first_group, first_run = accepted[0]
    assert (await a.post(f"/v1/groups/{first_group}/messages/cancel", json={})).status_code == 200
    for _ in range(3000):
        if (await a.get(f"/v1/runs/{first_run}")).json()["status"] == "cancelled":
            break
        await asyncio.sleep(0.01)
    again = await a.post(f"/v1/groups/{idle}/messages/async", json={"input": "hi"})
    assert again.status_code == 200, again.text

    for g in [*(g for g, _ in accepted[1:]), idle]:
        await a.post(f"/v1/groups/{g}/messages/cancel", json={})
    await b.post(f"/v1/groups/{other_tenant[0]}/messages/cancel", json={})
