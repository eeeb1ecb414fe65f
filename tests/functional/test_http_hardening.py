"""The HTTP surface in-process: who may call a keyless server, bounded bodies, strict JSON, clear 4xx.

Each test sends what an attacker (or a broken client) would and checks the
answer; the same attacks against a real uvicorn are in `tests/security`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, MutableMapping
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from support import create_agent, create_group, parse_sse


async def _client(app: FastAPI, base_url: str, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=base_url, **kwargs) as client:
            yield client


@pytest.fixture
async def small(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """A keyless app on loopback whose bodies may be 2 KiB at most."""
    async for client in _client(make_app(settings={"max_body_bytes": 2048}), "http://127.0.0.1:8283"):
        yield client


# who may call a keyless server


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8283", "127.0.0.1.nip.io", "192.168.1.5:8283"])
async def test_a_keyless_server_refuses_a_foreign_host(make_app: Callable[..., FastAPI], host: str) -> None:
    async for client in _client(make_app(), f"http://{host}"):
        response = await client.get("/v1/agents")
        assert response.status_code == 403, response.text
        assert "DNS rebinding" in response.json()["detail"]
        assert (await client.post("/v1/agents", json={})).status_code == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.1:8283", "localhost:9", "LOCALHOST.", "[::1]:8283"])
async def test_a_keyless_server_answers_loopback_names(make_app: Callable[..., FastAPI], host: str) -> None:
    async for client in _client(make_app(), f"http://{host}"):
        assert (await client.get("/v1/agents")).status_code == 200


async def test_unsafe_methods_need_the_servers_own_origin(small: httpx.AsyncClient) -> None:
    own = {"Origin": "http://127.0.0.1:8283"}
    for origin in ("http://evil.example", "null", "http://localhost:8283", "http://127.0.0.1:9999", "file://"):
        refused = await small.post("/v1/agents", json={}, headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert "Origin" in refused.json()["detail"]
    assert (
        await small.delete("/v1/agents/agent-00000000-0000-4000-8000-000000000000", headers={"Origin": "null"})
    ).status_code == 403
    assert (await small.post("/v1/agents", json={}, headers=own)).status_code == 200
    assert (await small.get("/v1/agents", headers={"Origin": "http://evil.example"})).status_code == 200  # CORS-less


async def test_with_api_keys_the_host_is_not_checked(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(settings={"api_keys": SecretStr("key-a=tenant-a")})
    async for client in _client(app, "http://chorus.example.com", headers={"Authorization": "Bearer key-a"}):
        assert (await client.get("/v1/agents")).status_code == 200
        assert (await client.post("/v1/agents", json={}, headers={"Origin": "https://app.example"})).status_code == 200


async def test_the_allow_list_is_a_setting(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(settings={"allowed_hosts": "chorus.internal"})
    async for client in _client(app, "http://chorus.internal:8283"):
        assert (await client.get("/v1/agents")).status_code == 200
    async for client in _client(make_app(settings={"allowed_hosts": "chorus.internal"}), "http://127.0.0.1"):
        assert (await client.get("/v1/agents")).status_code == 403
    async for client in _client(make_app(settings={"allowed_hosts": "*"}), "http://anything.example"):
        assert (await client.get("/v1/agents")).status_code == 200


# bounded bodies


async def test_a_declared_body_over_the_limit_is_413(small: httpx.AsyncClient) -> None:
    body = json.dumps({"name": "a", "system": "x" * 3000})
    response = await small.post("/v1/agents", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert "CHORUS_MAX_BODY_BYTES" in response.json()["detail"]
    assert (await small.get("/v1/agents")).json() == []


async def test_a_chunked_body_over_the_limit_is_413(small: httpx.AsyncClient) -> None:
    chunks_read = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal chunks_read
        yield b'{"name": "a", "system": "'
        for _ in range(100):
            chunks_read += 1
            yield b"x" * 1000
        yield b'"}'

    response = await small.post("/v1/agents", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert chunks_read < 10, "reading stops at the first chunk past the limit"
    assert (await small.get("/v1/agents")).json() == []


async def test_a_body_under_the_limit_is_read(small: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"name": "a", '
        yield b'"system": "' + b"x" * 1000 + b'"}'

    response = await small.post("/v1/agents", content=chunks(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text


async def test_a_malformed_content_length_is_400(make_app: Callable[..., FastAPI]) -> None:
    from chorus.api.body_limit import BodyLimit
    from chorus.api.http_policy import HttpPolicy

    sent: list[MutableMapping[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise AssertionError("the app must not be called")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "POST", "path": "/v1/agents", "headers": [(b"content-length", b"-5")]}
    await BodyLimit(app, HttpPolicy())(scope, receive, send)
    assert sent[0]["status"] == 400


# strict JSON, clear 4xx


def _raw(client: httpx.AsyncClient, path: str, text: str) -> Any:
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(
    "body",
    [
        '{"name": "a", "metadata": {"x": NaN}}',
        '{"name": "a", "metadata": {"x": Infinity}}',
        '{"name": "a", "metadata": {"x": -Infinity}}',
        '{"name": "a", "metadata": {"x": 1e400}}',
        '{"name": "\\ud800"}',
        '{"name": "a", "system": "x\\udc00y"}',
        '{"name": "a", "metadata": ' + "[" * 100 + "]" * 100 + "}",
    ],
)
async def test_json_that_is_not_plain_json_is_422(small: httpx.AsyncClient, body: str) -> None:
    response = await _raw(small, "/v1/agents", body)
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["type"] == "json_invalid"
    assert "JSON decode error: " in response.json()["detail"]
    assert (await small.get("/v1/agents")).json() == []


async def test_nan_and_surrogates_in_every_kind_of_body_are_422(small: httpx.AsyncClient) -> None:
    agent = await create_agent(small, "Ada")
    group = await create_group(small, [agent["id"]])
    for path, text in [
        (f"/v1/groups/{group['id']}/messages", '{"input": "hi", "max_steps": NaN}'),
        (f"/v1/groups/{group['id']}/messages", '{"input": "\\ud800"}'),
        ("/v1/blocks", '{"label": "notes", "value": "x", "limit": Infinity}'),
        ("/v1/blocks", '{"label": "notes", "value": "\\udfff"}'),
    ]:
        response = await _raw(small, path, text)
        assert response.status_code == 422, (path, text, response.text)


async def test_nesting_within_the_bound_is_accepted(small: httpx.AsyncClient) -> None:
    nested: Any = 1
    for _ in range(60):
        nested = [nested]
    response = await small.post("/v1/agents", json={"name": "a", "metadata": {"deep": nested}})
    assert response.status_code == 200, response.text
    assert response.json()["metadata"]["deep"] == nested


@pytest.mark.parametrize("after", [2**63, 10**30, 2**64 + 1])
async def test_cursors_past_63_bits_are_422(small: httpx.AsyncClient, after: int) -> None:
    run = "run-00000000-0000-4000-8000-000000000000"
    in_body = await _raw(small, f"/v1/runs/{run}/stream", f'{{"starting_after": {after}}}')
    assert in_body.status_code == 422, in_body.text
    in_header = await small.post(f"/v1/runs/{run}/stream", headers={"Last-Event-ID": str(after)}, json={})
    assert in_header.status_code == 422, in_header.text
    assert (await small.get(f"/v1/agents?limit={after}")).status_code == 422


async def test_work_driving_fields_are_bounded(api: httpx.AsyncClient) -> None:
    agent = await create_agent(api, "Ada")
    group = await create_group(api, [agent["id"]])
    too_big = [
        (
            "/v1/agents",
            {"name": "a", "model": "scripted/default", "metadata": {"scripted": {"tokens": 15_000_000}}},
            400,
        ),
        ("/v1/agents", {"name": "a", "metadata": {"scripted": {"delay_s": 1e9}}}, 400),
        ("/v1/agents", {"name": "a", "tags": ["t"] * 501}, 422),
        ("/v1/groups", {"agent_ids": [agent["id"]] * 501}, 422),
        ("/v1/groups", {"agent_ids": [agent["id"]], "manager_config": {"max_turns": 10_001}}, 422),
        (f"/v1/groups/{group['id']}/messages", {"input": "hi", "max_steps": 10_001}, 422),
        (f"/v1/groups/{group['id']}/messages", {"messages": [{"role": "user", "content": "x"}] * 501}, 422),
        ("/v1/blocks", {"label": "notes", "value": "x", "limit": 1_000_001}, 422),
    ]
    for path, body, status in too_big:
        response = await api.post(path, json=body)
        assert response.status_code == status, (path, response.text)


# resuming at or past the end of a run


@pytest.fixture
async def api(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    async for client in _client(make_app(), "http://127.0.0.1", timeout=60):
        yield client


async def test_resuming_past_the_end_of_a_live_run_waits_for_its_end(api: httpx.AsyncClient) -> None:
    agents = [await create_agent(api, name, tokens=20, delay_s=0.02) for name in ("Ada", "Brook")]
    group = await create_group(api, [a["id"] for a in agents])
    run = (await api.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})).json()
    assert (await api.get(f"/v1/runs/{run['id']}")).json()["status"] in ("created", "running")
    resumed = await api.post(f"/v1/runs/{run['id']}/stream", json={"starting_after": 100_000})
    assert resumed.status_code == 200
    assert [e.data for e in parse_sse(resumed.text)] == ["[DONE]"]
    assert (await api.get(f"/v1/runs/{run['id']}")).json()["status"] == "completed", "[DONE] before the run ended"


async def test_resuming_past_the_end_of_a_finished_run_is_done(api: httpx.AsyncClient) -> None:
    agent = await create_agent(api, "Ada", tokens=2)
    group = await create_group(api, [agent["id"]])
    run = (await api.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})).json()
    for _ in range(500):
        if (await api.get(f"/v1/runs/{run['id']}")).json()["status"] == "completed":
            break
        await asyncio.sleep(0.01)
    full = parse_sse((await api.post(f"/v1/runs/{run['id']}/stream", json={})).text)
    for after in (len(full), len(full) + 1, 2**63 - 1):
        resumed = await api.post(f"/v1/runs/{run['id']}/stream", json={"starting_after": after})
        assert [e.data for e in parse_sse(resumed.text)] == ["[DONE]"], after


async def test_a_listing_of_large_items_ends_early_and_pages_on(api: httpx.AsyncClient) -> None:
    """Ten blocks of a million characters: no one response carries them all; the cursor reaches every one."""
    made = set()
    for i in range(10):
        response = await api.post("/v1/blocks", json={"label": f"b{i}", "value": "x" * 1_000_000, "limit": 1_000_000})
        assert response.status_code == 200, response.text
        made.add(response.json()["id"])
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"limit": 1000, "order": "asc"}
    while True:
        page = await api.get("/v1/blocks", params=params)
        assert page.status_code == 200
        assert len(page.content) <= 8_000_000 + 100_000
        ids = [b["id"] for b in page.json()]
        if not ids:
            break
        seen += ids
        pages += 1
        params["after"] = ids[-1]
    assert set(seen) == made and len(seen) == len(made)
    assert pages >= 2
