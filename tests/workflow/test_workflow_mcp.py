"""An MCP server's tools called from background runs the run state machine executes (moto Step Functions)."""

from __future__ import annotations

from typing import Any

from support import create_group
from support.mcp_servers import TOKEN, mcp_server
from support.workflow_harness import Harness, background


async def _agent_with_mcp_tool(h: Harness, url: str, call: dict[str, Any]) -> dict[str, Any]:
    config = {"mcp_server_type": "streamable_http", "server_url": url, "auth_header": "Authorization"}
    created = await h.client.post(
        "/v1/mcp-servers/", json={"server_name": "tools", "config": {**config, "auth_token": TOKEN}}
    )
    assert created.status_code == 200, created.text
    tools = (await h.client.get(f"/v1/mcp-servers/{created.json()['id']}/tools")).json()
    tool_ids = [t["id"] for t in tools if t["name"] == call["name"]]
    script = {"steps": [[call]], "replies": ["done"]}
    body = {"name": "Ada", "model": "scripted/default", "tool_ids": tool_ids, "metadata": {"scripted": script}}
    agent = await h.client.post("/v1/agents", json=body)
    assert agent.status_code == 200, agent.text
    return dict(agent.json())


async def test_a_background_run_calls_an_mcp_tool_in_the_step_function(harness: Harness) -> None:
    h = harness
    with mcp_server() as mcp:
        agent = await _agent_with_mcp_tool(h, mcp.url, {"name": "add", "arguments": {"a": 4, "b": 5}})
        group = await create_group(h.client, [agent["id"]])
        events = await background(h, group["id"], "add them")
        executions = await h.settle()
        called = [hd for hd in mcp.seen_headers if hd.get("authorization") == TOKEN]
    kinds = [e["message_type"] for e in events]
    assert kinds[:3] == ["tool_call_message", "tool_return_message", "assistant_message"]
    returned = events[1]
    assert returned["status"] == "success" and returned["tool_return"] == "9"
    assert [e["status"] for e in executions] == ["SUCCEEDED"]
    run = (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    assert run["status"] == "completed" and run["stop_reason"] == "end_turn"
    assert called, "the Step function's MCP requests carried the server's auth header"


async def test_a_server_gone_before_the_step_is_an_error_return_and_the_run_completes(harness: Harness) -> None:
    h = harness
    with mcp_server() as mcp:
        agent = await _agent_with_mcp_tool(h, mcp.url, {"name": "echo", "arguments": {"text": "hi"}})
    group = await create_group(h.client, [agent["id"]])
    events = await background(h, group["id"], "echo")
    returned = next(e for e in events if e["message_type"] == "tool_return_message")
    assert returned["status"] == "error" and "connection failed" in returned["tool_return"]
    assert [e["status"] for e in await h.settle()] == ["SUCCEEDED"]
    run = (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    assert run["status"] == "completed"
