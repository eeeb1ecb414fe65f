"""`McpToolExecutor`: the tool-execution port's adapter for tools an MCP server serves.

The call runs on the server side, not in the sandbox (the tool's code is the MCP server's, not the
tenant's), with what every executor gives a call: its timeout, its output cap
(`return_char_limit`), cancellation by cancelling the awaiting task (the HTTP request is dropped),
and every failure as a `status="error"` result the model reads, never an exception: a server that
went away mid-run makes that call an error tool return and the run goes on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from chorus.store.records import McpServerRecord, ToolRecord
from chorus.tools.execution import ToolCall, ToolResult
from chorus.tools.mcp_client import McpServerUnreachable, call_tool
from chorus.tools.mcp_policy import McpUrlPolicy, McpUrlRefused
from chorus.tools.sandbox import value_cut_marker

__all__ = ["McpToolExecutor", "mcp_call"]

logger = logging.getLogger(__name__)


def mcp_call(tool: ToolRecord, server: McpServerRecord, arguments: Mapping[str, Any], timeout_s: float) -> ToolCall:
    """The call of `tool` on `server`, as read now (its URL or token may have changed since a run began)."""
    return ToolCall(
        tenant_id=tool.tenant_id,
        source_code="",
        name=tool.name,
        arguments=dict(arguments),
        timeout_s=timeout_s,
        return_char_limit=tool.return_char_limit,
        server_url=server.server_url,
        headers=server.headers(),
    )


class McpToolExecutor:
    name = "mcp"
    isolates_tenants = True
    """The tenant's tool runs on the tenant's MCP server; nothing of it runs here."""

    def __init__(self, policy: McpUrlPolicy) -> None:
        self.policy = policy

    async def run(self, call: ToolCall) -> ToolResult:
        started = time.monotonic()
        if call.server_url is None:
            return ToolResult(f"Tool {call.name} names no MCP server.", "error")
        try:
            reply = await call_tool(
                call.server_url, call.headers, self.policy, call.name, call.arguments, call.timeout_s
            )
        except (McpServerUnreachable, McpUrlRefused) as exc:
            logger.info("MCP tool %s failed: %s", call.name, exc.detail)
            return ToolResult(f"Tool {call.name} failed: {exc.detail}", "error", duration_s=time.monotonic() - started)
        value = reply.text
        if len(value) > call.return_char_limit:
            cut = len(value) - call.return_char_limit
            value = value[: call.return_char_limit] + value_cut_marker(cut, call.return_char_limit)
        return ToolResult(value, "error" if reply.is_error else "success", duration_s=time.monotonic() - started)
