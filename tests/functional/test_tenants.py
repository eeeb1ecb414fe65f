"""Two tenants by API key: neither can see or touch the other's objects (404, never 403); no key is 401."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from support import parse_sse, payloads


@pytest.fixture
async def clients(make_app: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    app = make_app(settings={"api_keys": SecretStr("key-a=tenant-a,key-b=tenant-b")})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with (
            httpx.AsyncClient(transport=transport, base_url="http://t", headers={"Authorization": "Bearer key-a"}) as a,
            httpx.AsyncClient(transport=transport, base_url="http://t", headers={"Authorization": "Bearer key-b"}) as b,
        ):
            yield a, b


async def test_missing_or_wrong_key_is_401(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, _ = clients
    assert (await a.get("/v1/agents", headers={"Authorization": ""})).status_code == 401
    assert (await a.get("/v1/agents", headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await a.get("/v1/health", headers={"Authorization": ""})).status_code == 200


async def test_objects_are_invisible_across_tenants(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    a, b = clients
    block = (await a.post("/v1/blocks", json={"label": "notes", "value": "secret"})).json()
    agent = (
        await a.post(
            "/v1/agents",
            json={
                "name": "A1",
                "metadata": {"scripted": {"tokens": 2, "use_tools": False}},
                "block_ids": [block["id"]],
            },
        )
    ).json()
    group = (await a.post("/v1/groups", json={"agent_ids": [agent["id"]]})).json()
    sent = await a.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "hi", "background": True})
    run_id = payloads(parse_sse(sent.text))[0]["run_id"]

    for method, path, body in [
        ("GET", f"/v1/agents/{agent['id']}", None),
        ("PATCH", f"/v1/agents/{agent['id']}", {"name": "stolen"}),
        ("DELETE", f"/v1/agents/{agent['id']}", None),
        ("POST", f"/v1/agents/{agent['id']}/messages/cancel", {}),
        ("GET", f"/v1/agents/{agent['id']}/core-memory/blocks", None),
        ("GET", f"/v1/agents/{agent['id']}/core-memory/blocks/notes", None),
        ("PATCH", f"/v1/agents/{agent['id']}/core-memory/blocks/notes", {"value": "stolen"}),
        ("PATCH", f"/v1/agents/{agent['id']}/core-memory/blocks/detach/{block['id']}", None),
        ("GET", f"/v1/blocks/{block['id']}", None),
        ("PATCH", f"/v1/blocks/{block['id']}", {"value": "stolen"}),
        ("DELETE", f"/v1/blocks/{block['id']}", None),
        ("GET", f"/v1/groups/{group['id']}", None),
        ("PATCH", f"/v1/groups/{group['id']}", {"description": "x"}),
        ("DELETE", f"/v1/groups/{group['id']}", None),
        ("POST", f"/v1/groups/{group['id']}/messages", {"input": "x"}),
        ("POST", f"/v1/groups/{group['id']}/messages/stream", {"input": "x"}),
        ("POST", f"/v1/groups/{group['id']}/messages/async", {"input": "x"}),
        ("POST", f"/v1/groups/{group['id']}/messages/cancel", {}),
        ("GET", f"/v1/groups/{group['id']}/messages", None),
        ("PATCH", f"/v1/groups/{group['id']}/reset-messages", None),
        ("GET", f"/v1/runs/{run_id}", None),
        ("GET", f"/v1/runs/{run_id}/messages", None),
        ("GET", f"/v1/runs/{run_id}/usage", None),
        ("GET", f"/v1/runs/{run_id}/steps", None),
        ("POST", f"/v1/runs/{run_id}/stream", {}),
        ("DELETE", f"/v1/runs/{run_id}", None),
    ]:
        response = await b.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.status_code, response.text)
    assert (await b.get("/v1/agents")).json() == []
    assert (await b.get("/v1/groups")).json() == []
    assert (await b.get("/v1/runs")).json() == []
    assert (await b.get("/v1/blocks")).json() == []
    assert (await b.post("/v1/groups", json={"agent_ids": [agent["id"]]})).status_code == 404
    b_agent = (await b.post("/v1/agents", json={"name": "B1"})).json()
    stolen = await b.patch(f"/v1/agents/{b_agent['id']}/core-memory/blocks/attach/{block['id']}")
    assert stolen.status_code == 404
    assert (await b.post("/v1/agents", json={"name": "B2", "block_ids": [block["id"]]})).status_code == 404
    assert (
        await b.post("/v1/groups", json={"agent_ids": [b_agent["id"]], "shared_block_ids": [block["id"]]})
    ).status_code == 404
    assert (await a.get(f"/v1/blocks/{block['id']}")).json()["value"] == "secret"
    assert (await a.get(f"/v1/agents/{agent['id']}")).json()["name"] == "A1", "nothing of A's changed"
    assert len((await a.get(f"/v1/groups/{group['id']}/messages")).json()) == 2
