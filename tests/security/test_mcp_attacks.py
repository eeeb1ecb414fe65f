"""What a hostile tenant tries with MCP servers: another tenant's servers and tools, the stored secrets,
server-side request forgery, and a stdio server (a command run on the server)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from support import create_group, payloads, stream
from support.mcp_servers import TOKEN, McpTestServer, mcp_server

KEYS = SecretStr("ka=alice,kb=bob")


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpTestServer]:
    with mcp_server() as server:
        yield server


@pytest.fixture
async def tenants(make_app: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    """alice and bob on one server whose operator lets MCP servers be on private networks (the test's is)."""
    app = make_app(settings={"api_keys": KEYS, "mcp_private_networks": "allow"})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        base = "http://127.0.0.1"
        async with (
            httpx.AsyncClient(transport=transport, base_url=base, headers={"Authorization": "Bearer ka"}) as alice,
            httpx.AsyncClient(transport=transport, base_url=base, headers={"Authorization": "Bearer kb"}) as bob,
        ):
            yield alice, bob


async def register(client: httpx.AsyncClient, url: str, name: str = "tools", **config: Any) -> httpx.Response:
    body = {"server_name": name, "config": {"mcp_server_type": "streamable_http", "server_url": url, **config}}
    return await client.post("/v1/mcp-servers/", json=body)


SECURED: dict[str, Any] = {"auth_header": "Authorization", "auth_token": TOKEN, "custom_headers": {"X-Key": TOKEN}}


@pytest.mark.both_stores
async def test_another_tenants_servers_and_tools_are_not_found(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient], mcp: McpTestServer
) -> None:
    alice, bob = tenants
    server = (await register(alice, mcp.url, **SECURED)).json()
    tools = (await alice.get(f"/v1/mcp-servers/{server['id']}/tools")).json()
    tool_id = next(t["id"] for t in tools if t["name"] == "add")
    base = f"/v1/mcp-servers/{server['id']}"
    attempts = [
        bob.get(base),
        bob.patch(base, json={"config": {"server_url": mcp.url}}),
        bob.delete(base),
        bob.patch(f"{base}/refresh"),
        bob.get(f"{base}/tools"),
        bob.get(f"{base}/tools/{tool_id}"),
        bob.post(f"{base}/tools/{tool_id}/run", json={"args": {"a": 1, "b": 2}}),
        bob.get(f"/v1/tools/{tool_id}"),
        bob.post("/v1/agents", json={"name": "Mallory", "tool_ids": [tool_id]}),
    ]
    for attempt in attempts:
        response = await attempt
        assert response.status_code == 404, (response.request.method, response.request.url, response.text)
    assert (await bob.get("/v1/mcp-servers/")).json() == []
    mallory = (await bob.post("/v1/agents", json={"name": "Mallory"})).json()
    attached = await bob.patch(f"/v1/agents/{mallory['id']}/tools/attach/{tool_id}")
    assert attached.status_code == 404
    assert (await alice.get(base)).status_code == 200


async def test_a_run_cannot_call_another_tenants_tool_by_name(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient], mcp: McpTestServer
) -> None:
    alice, bob = tenants
    await register(alice, mcp.url, **SECURED)
    calls = mcp.seen_headers.copy()
    script = {"steps": [[{"name": "add", "arguments": {"a": 1, "b": 2}}]], "replies": ["done"]}
    agent = (await bob.post("/v1/agents", json={"name": "Mallory", "metadata": {"scripted": script}})).json()
    group = await create_group(bob, [agent["id"]])
    events = payloads(await stream(bob, group["id"], {"input": "go"}))
    returned = next(e for e in events if e["message_type"] == "tool_return_message")
    assert returned["status"] == "error"
    assert mcp.seen_headers == calls


async def test_secrets_are_masked_never_echoed_and_never_logged(
    tenants: tuple[httpx.AsyncClient, httpx.AsyncClient], mcp: McpTestServer, caplog: pytest.LogCaptureFixture
) -> None:
    alice, _ = tenants
    caplog.set_level(logging.DEBUG)
    created = await register(alice, mcp.url, **SECURED)
    server_id = created.json()["id"]
    tool_id = next(t["id"] for t in (await alice.get(f"/v1/mcp-servers/{server_id}/tools")).json())
    script = {"steps": [[{"name": "add", "arguments": {"a": 1, "b": 2}}]], "replies": ["done"]}
    responses = [
        created,
        await alice.get("/v1/mcp-servers/"),
        await alice.get(f"/v1/mcp-servers/{server_id}"),
        await alice.patch(f"/v1/mcp-servers/{server_id}", json={"config": {"server_url": mcp.url}}),
        await alice.get(f"/v1/mcp-servers/{server_id}/tools"),
        await alice.get(f"/v1/tools/{tool_id}"),
        await alice.post("/v1/agents", json={"name": "A", "tool_ids": [tool_id], "metadata": {"scripted": script}}),
        await alice.patch(f"/v1/mcp-servers/{server_id}", json={"config": {"auth_token": TOKEN + "\n"}}),
        await alice.patch(f"/v1/mcp-servers/{server_id}", json={"config": {"custom_headers": {"X-Key": TOKEN + "\r"}}}),
        await register(alice, "http://127.0.0.1:9/mcp", "gone", auth_header="Authorization", auth_token=TOKEN),
    ]
    assert [r.status_code for r in responses[-3:]] == [422, 422, 400]
    moved = await alice.patch(f"/v1/mcp-servers/{server_id}", json={"config": {"server_url": "http://127.0.0.1:9/m"}})
    group = await create_group(alice, [responses[6].json()["id"]])
    events = payloads(await stream(alice, group["id"], {"input": "go"}))
    failed = next(e for e in events if e["message_type"] == "tool_return_message")
    assert failed["status"] == "error" and "connection failed" in failed["tool_return"]
    responses += [moved]
    assert created.json()["auth_token"] == "****" + TOKEN[-4:]
    for response in responses:
        assert TOKEN not in response.text and TOKEN[:-4] not in response.text, response.text
    assert TOKEN not in caplog.text and TOKEN[:-4] not in caplog.text


async def test_ssrf_targets_are_refused(make_app: Callable[..., FastAPI], mcp: McpTestServer) -> None:
    """Several tenants (`auto`): loopback and private addresses refused; link-local never; nothing stored."""
    app = make_app(settings={"api_keys": KEYS})
    async with app.router.lifespan_context(app):
        headers = {"Authorization": "Bearer kb"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as bob:
            for url in [
                mcp.url,
                mcp.url.replace("127.0.0.1", "localhost"),
                "http://169.254.169.254/latest/meta-data/",
                "http://[::ffff:169.254.169.254]/",
                "http://[fd00:ec2::254]/",
                "http://10.0.0.1/mcp",
                "http://0.0.0.0:8283/v1/agents",
                "file:///etc/passwd",
            ]:
                refused = await register(bob, url)
                assert refused.status_code == 400, (url, refused.text)
                assert "address" in refused.json()["detail"] or "http://" in refused.json()["detail"]
            assert (await bob.get("/v1/mcp-servers/")).json() == []
            assert (await bob.get("/v1/tools")).json() == []


async def test_an_operator_trusted_host_is_reachable_with_several_tenants(
    make_app: Callable[..., FastAPI], mcp: McpTestServer
) -> None:
    app = make_app(settings={"api_keys": KEYS, "mcp_allowed_hosts": "localhost"})
    async with app.router.lifespan_context(app):
        headers = {"Authorization": "Bearer ka"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as alice:
            trusted = await register(alice, mcp.url.replace("127.0.0.1", "localhost"), **SECURED)
            assert trusted.status_code == 200, trusted.text
            assert (await register(alice, mcp.url, "direct", **SECURED)).status_code == 400


async def test_a_stdio_server_is_refused_and_nothing_runs(client: httpx.AsyncClient, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    body = {
        "server_name": "local",
        "config": {"mcp_server_type": "stdio", "command": "touch", "args": [str(marker)]},
    }
    refused = await client.post("/v1/mcp-servers/", json=body)
    assert refused.status_code == 400 and "stdio" in refused.json()["detail"]
    no_type = {"server_name": "local", "config": {"command": "touch", "args": [str(marker)]}}
    assert (await client.post("/v1/mcp-servers/", json=no_type)).status_code == 400
    assert not marker.exists()
    assert (await client.get("/v1/mcp-servers/")).json() == []


@pytest.mark.parametrize("header", ["Host", "content-length", "Mcp-Session-Id", "Bad Name", "X\nInjected"])
async def test_headers_the_client_sets_or_that_are_malformed_are_refused(
    client: httpx.AsyncClient, header: str
) -> None:
    config = {"server_url": "http://127.0.0.1:9/mcp", "custom_headers": {header: "v"}}
    refused = await client.post("/v1/mcp-servers/", json={"server_name": "h", "config": config})
    assert refused.status_code == 422, refused.text
    assert (await client.get("/v1/mcp-servers/")).json() == []
