"""`McpToolExecutor` against a real MCP server (official `mcp` SDK, streamable HTTP, on loopback)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from chorus.tools import mcp_client
from chorus.tools.execution import ToolCall
from chorus.tools.mcp_client import guarded_backend, safe_url
from chorus.tools.mcp_executor import McpToolExecutor
from chorus.tools.mcp_policy import McpUrlPolicy, McpUrlRefused
from support.mcp_servers import TOKEN, McpTestServer, mcp_server

OPEN = McpToolExecutor(McpUrlPolicy(allow_private=True))


@pytest.fixture(scope="module")
def mcp() -> Iterator[McpTestServer]:
    with mcp_server() as server:
        yield server


def call(mcp: McpTestServer, name: str, timeout_s: float = 10.0, limit: int = 50_000, **arguments: object) -> ToolCall:
    return ToolCall(
        tenant_id="t1",
        source_code="",
        name=name,
        arguments=arguments,
        timeout_s=timeout_s,
        return_char_limit=limit,
        server_url=mcp.url,
        headers={"Authorization": TOKEN},
    )


async def test_a_call_returns_the_tools_text(mcp: McpTestServer) -> None:
    result = await OPEN.run(call(mcp, "add", a=20, b=22))
    assert (result.status, result.value) == ("success", "42")


async def test_the_tools_own_error_is_an_error_result(mcp: McpTestServer) -> None:
    result = await OPEN.run(call(mcp, "add", a="x"))
    assert result.status == "error" and "validation error" in result.value


async def test_output_is_cut_at_the_return_char_limit(mcp: McpTestServer) -> None:
    result = await OPEN.run(call(mcp, "big", limit=10, n=25))
    assert result.value.startswith("x" * 10 + "\n[... 15 more characters cut")


async def test_an_unreachable_server_is_an_error_result(mcp: McpTestServer) -> None:
    gone = ToolCall(tenant_id="t1", source_code="", name="add", arguments={}, server_url="http://127.0.0.1:9/mcp")
    result = await OPEN.run(gone)
    assert result.status == "error" and "connection failed" in result.value


async def test_the_timeout_ends_the_call(mcp: McpTestServer) -> None:
    result = await OPEN.run(call(mcp, "slow", timeout_s=0.5, seconds=30))
    assert result.status == "error" and "did not answer within 0.5 s" in result.value


async def test_cancelling_the_caller_interrupts_the_call(mcp: McpTestServer) -> None:
    started = mcp.slow_started
    task = asyncio.create_task(OPEN.run(call(mcp, "slow", timeout_s=600, seconds=600)))
    while mcp.slow_started == started:  # noqa: ASYNC110 - the MCP server counts in its own thread
        await asyncio.sleep(0.01)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_the_policy_is_applied_where_the_connection_is_made(mcp: McpTestServer) -> None:
    strict = McpToolExecutor(McpUrlPolicy(allow_private=False))
    refused = await strict.run(call(mcp, "add", a=1, b=2))
    assert refused.status == "error" and "loopback or private" in refused.value
    backend = guarded_backend(McpUrlPolicy(allow_private=False))
    with pytest.raises(McpUrlRefused, match="loopback or private"):
        await backend.connect_tcp("localhost", 80)


def test_headers_never_show_in_a_calls_repr(mcp: McpTestServer) -> None:
    assert TOKEN not in repr(call(mcp, "add"))
    assert safe_url("https://user:pw@mcp.example.com:8443/mcp?key=secret#x") == "https://mcp.example.com:8443/mcp"


async def test_a_reply_past_the_byte_cap_is_not_read(mcp: McpTestServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_client, "MAX_MCP_REPLY_BYTES", 10_000)
    result = await OPEN.run(call(mcp, "big", n=50_000))
    assert result.status == "error" and "reply is longer than 10000 bytes" in result.value
    assert (await OPEN.run(call(mcp, "big", n=1_000))).status == "success"
