"""MCP tool servers and the model list through the official SDK (`letta-client` 1.7.0, strict validation).

Real uvicorn serves Chorus (on SQLite and on DynamoDB/moto) and a real MCP server from the official
`mcp` package (streamable HTTP, auth header required) serves the tools, both on loopback.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from letta_client import BadRequestError, ConflictError, Letta, NotFoundError

from support.mcp_servers import TOKEN, McpTestServer, mcp_server
from support.threaded_server import serve_in_thread

pytestmark = [pytest.mark.e2e, pytest.mark.both_stores]


@pytest.fixture
def mcp() -> Iterator[McpTestServer]:
    with mcp_server() as server:
        yield server


@pytest.fixture
def client(make_app: Callable[..., FastAPI]) -> Iterator[Letta]:
    with serve_in_thread(make_app(settings={"tool_timeout_s": 5})) as (url, _):
        yield Letta(base_url=url, api_key="local", max_retries=0, _strict_response_validation=True)


@pytest.fixture
def patient(make_app: Callable[..., FastAPI]) -> Iterator[tuple[str, Letta]]:
    """A server whose tools may run ten minutes: only a cancel ends a slow call early."""
    with serve_in_thread(make_app(settings={"tool_timeout_s": 600})) as (url, _):
        yield url, Letta(base_url=url, api_key="local", max_retries=0, _strict_response_validation=True)


def register(client: Letta, mcp: McpTestServer, name: str = "test-tools") -> Any:
    return client.mcp_servers.create(
        server_name=name,
        config={
            "mcp_server_type": "streamable_http",
            "server_url": mcp.url,
            "auth_header": "Authorization",
            "auth_token": TOKEN,
            "custom_headers": {"X-Team": "blue-team-header-value"},
        },
    )


def tool_agent(client: Letta, tool_ids: list[str], calls: list[dict[str, Any]], name: str = "Ada") -> Any:
    script = {"steps": [calls], "replies": ["done"]}
    return client.agents.create(name=name, model="scripted/default", tool_ids=tool_ids, metadata={"scripted": script})


def test_models_list_names_handles_agents_accept(client: Letta) -> None:
    models = client.models.list()
    handles = [m.handle for m in models]
    assert "scripted/default" in handles
    for model in models:
        assert model.handle == f"{model.provider_name}/{model.name}"
        agent = client.agents.create(name=f"m-{model.name}"[:60], model=model.handle)
        assert agent.model == model.handle
    assert client.models.list(provider_name="nobody") == []
    assert [m.handle for m in client.models.list(provider_type="letta")] == ["scripted/default"]


def test_create_lists_the_servers_tools_as_external_mcp_tools(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    assert server.id is not None and server.id.startswith("mcp_server-")
    assert server.mcp_server_type == "streamable_http" and server.server_url == mcp.url
    assert server.auth_token == "****" + TOKEN[-4:] and server.custom_headers == {"X-Team": "****" + "alue"}
    assert [s.id for s in client.mcp_servers.list()] == [server.id]
    assert client.mcp_servers.retrieve(server.id).server_name == "test-tools"
    tools = {t.name: t for t in client.mcp_servers.tools.list(server.id)}
    assert set(tools) == {"add", "echo", "slow", "big", "vanish"}
    add = tools["add"]
    assert add.tool_type == "external_mcp" and add.id.startswith("tool-")
    parameters: Any = (add.json_schema or {})["parameters"]
    assert parameters["required"] == ["a", "b"]
    assert client.mcp_servers.tools.retrieve(add.id, mcp_server_id=server.id).name == "add"
    assert client.tools.retrieve(add.id).tool_type == "external_mcp"
    seen = [h for h in mcp.seen_headers if h.get("authorization") == TOKEN]
    assert seen and all(h.get("x-team") == "blue-team-header-value" for h in seen)


def test_tools_run_returns_status_and_value(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    ok = client.mcp_servers.tools.run(tools["add"], mcp_server_id=server.id, args={"a": 2, "b": 40})
    assert ok.status == "success" and ok.func_return == "42"
    bad = client.mcp_servers.tools.run(tools["add"], mcp_server_id=server.id, args={"a": "x"})
    assert bad.status == "error" and "validation error" in str(bad.func_return)


def test_an_agent_calls_mcp_tools_streamed_as_tool_messages(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    agent = tool_agent(client, [tools["add"]], [{"name": "add", "arguments": {"a": 1, "b": 2}}])
    group = client.groups.create(agent_ids=[agent.id], description="mcp")
    events = list(client.groups.messages.stream(group.id, input="add"))
    kinds = [e.message_type for e in events]
    assert "tool_call_message" in kinds and "tool_return_message" in kinds
    returned = next(e for e in events if e.message_type == "tool_return_message")
    assert returned.status == "success" and returned.tool_return == "3"
    assert events[-2].message_type == "stop_reason" and events[-2].stop_reason == "end_turn"


def test_tools_attach_like_any_tool_and_ids_survive_refresh(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    before = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    agent = client.agents.create(name="Ada", model="scripted/default")
    client.agents.tools.attach(before["echo"], agent_id=agent.id)
    summary = client.mcp_servers.refresh(server.id)
    assert summary == {"added": [], "updated": [], "deleted": []}
    assert {t.name: t.id for t in client.mcp_servers.tools.list(server.id)} == before
    assert [t.id for t in client.agents.retrieve(agent.id).tools] == [before["echo"]]


def test_refresh_adds_and_deletes_and_delete_removes_the_tools(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    before = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    with mcp_server(extra_tools=True) as richer:
        client.mcp_servers.update(server.id, config={"server_url": richer.url, "mcp_server_type": "streamable_http"})
        summary: Any = client.mcp_servers.refresh(server.id)
    assert summary["added"] == ["shout"] and summary["deleted"] == []
    after = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    assert {k: v for k, v in after.items() if k != "shout"} == before
    client.mcp_servers.delete(server.id)
    with pytest.raises(NotFoundError):
        client.mcp_servers.retrieve(server.id)
    for tool_id in after.values():
        with pytest.raises(NotFoundError):
            client.tools.retrieve(tool_id)


def test_update_keeps_a_masked_secret_sent_back(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    read: Any = client.mcp_servers.retrieve(server.id)
    config = {"mcp_server_type": "streamable_http", "server_url": mcp.url, "auth_header": "Authorization"}
    sent_back: Any = {**config, "auth_token": read.auth_token}
    client.mcp_servers.update(server.id, config=sent_back, server_name="renamed")
    assert client.mcp_servers.retrieve(server.id).server_name == "renamed"
    client.mcp_servers.refresh(server.id)  # still authenticates: the stored token was kept
    wrong: Any = {**config, "auth_token": "Bearer wrong-token-value"}
    client.mcp_servers.update(server.id, config=wrong)
    with pytest.raises(BadRequestError, match="401"):
        client.mcp_servers.refresh(server.id)


def test_unreachable_and_unauthorised_servers_are_400_and_store_nothing(client: Letta, mcp: McpTestServer) -> None:
    with pytest.raises(BadRequestError, match="connection failed"):
        client.mcp_servers.create(
            server_name="gone", config={"mcp_server_type": "streamable_http", "server_url": "http://127.0.0.1:9/mcp"}
        )
    with pytest.raises(BadRequestError, match="401") as refused:
        client.mcp_servers.create(
            server_name="anon", config={"mcp_server_type": "streamable_http", "server_url": mcp.url}
        )
    assert TOKEN not in str(refused.value)
    assert client.mcp_servers.list() == []


def test_a_server_gone_mid_run_is_an_error_tool_return_and_the_run_ends(client: Letta) -> None:
    with mcp_server() as mcp:
        server = register(client, mcp)
        tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
        calls = [{"name": "vanish", "arguments": {}}]
        agent = tool_agent(client, [tools["vanish"], tools["echo"]], calls)
        group = client.groups.create(agent_ids=[agent.id], description="mcp")
        events = list(client.groups.messages.stream(group.id, input="go"))
    returned = next(e for e in events if e.message_type == "tool_return_message")
    assert returned.status == "error" and "vanish" in returned.tool_return
    assert next(e for e in events if e.message_type == "stop_reason").stop_reason == "end_turn"
    assert returned.run_id is not None and client.runs.retrieve(returned.run_id).status == "completed"
    followup = list(client.groups.messages.stream(group.id, input="again"))
    assert next(e for e in followup if e.message_type == "tool_return_message").status == "error"


def test_timeouts_and_output_caps_apply(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    slow = client.mcp_servers.tools.run(tools["slow"], mcp_server_id=server.id, args={"seconds": 60})
    assert slow.status == "error" and "did not answer within 5 s" in str(slow.func_return)
    client.tools.update(tools["big"], return_char_limit=100)
    big = client.mcp_servers.tools.run(tools["big"], mcp_server_id=server.id, args={"n": 5000})
    assert big.status == "success" and str(big.func_return).startswith("x" * 100 + "\n[... 4900 more characters cut")


def test_stdio_and_sse_servers_are_refused(client: Letta) -> None:
    with pytest.raises(BadRequestError, match="stdio MCP servers are not supported"):
        client.mcp_servers.create(
            server_name="local", config={"mcp_server_type": "stdio", "command": "sh", "args": ["-c", "id"]}
        )
    with pytest.raises(BadRequestError, match="SSE MCP servers are not supported"):
        client.mcp_servers.create(
            server_name="sse", config={"mcp_server_type": "sse", "server_url": "http://127.0.0.1:9/sse"}
        )


def test_a_supervisors_worker_calls_an_mcp_tool(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    worker = tool_agent(client, [tools["add"]], [{"name": "add", "arguments": {"a": 3, "b": 4}}], name="Worker")
    boss = client.agents.create(name="Boss", model="scripted/default")
    config: Any = {"manager_type": "supervisor", "manager_agent_id": boss.id}
    group = client.groups.create(agent_ids=[worker.id], description="mcp", manager_config=config)
    events = list(client.groups.messages.stream(group.id, input="add"))
    returns = [e for e in events if e.message_type == "tool_return_message"]
    assert any(r.status == "success" and r.tool_return == "7" and r.name == "Worker" for r in returns), returns
    assert next(e for e in events if e.message_type == "stop_reason").stop_reason == "end_turn"


def test_cancelling_a_run_interrupts_its_mcp_call(patient: tuple[str, Letta], mcp: McpTestServer) -> None:
    url, client = patient
    server = register(client, mcp)
    tools = {t.name: t.id for t in client.mcp_servers.tools.list(server.id)}
    agent = tool_agent(client, [tools["slow"]], [{"name": "slow", "arguments": {"seconds": 600}}])
    group = client.groups.create(agent_ids=[agent.id], description="mcp")
    started = mcp.slow_started
    with httpx.Client(base_url=url, timeout=30) as http:
        run_id = http.post(f"/v1/groups/{group.id}/messages/async", json={"input": "wait"}).json()["id"]
        while mcp.slow_started == started:
            time.sleep(0.02)
        assert http.post(f"/v1/groups/{group.id}/messages/cancel", json={}).status_code == 200
    while (run := client.runs.retrieve(run_id)).status not in ("completed", "failed", "cancelled"):
        time.sleep(0.05)
    assert run.status == "cancelled"


def test_an_mcp_tools_code_and_schema_change_only_by_refresh(client: Letta, mcp: McpTestServer) -> None:
    server = register(client, mcp)
    add = next(t for t in client.mcp_servers.tools.list(server.id) if t.name == "add")
    source = 'def add(a: int) -> int:\n    """Shadow it.\n\n    Args:\n        a: a\n    """\n    return a\n'
    with pytest.raises(ConflictError, match="tool of an MCP server"):
        client.tools.upsert(source_code=source)
    with pytest.raises(ConflictError, match="tool of an MCP server"):
        client.tools.update(add.id, source_code=source)
    client.tools.update(add.id, default_requires_approval=True)
    assert client.tools.retrieve(add.id).tool_type == "external_mcp"
