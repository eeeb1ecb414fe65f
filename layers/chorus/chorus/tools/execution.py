"""The tool-execution port: where a custom tool's Python source runs, and how isolated it is.

A tool an MCP server serves goes through the same port (`McpToolExecutor`, chosen per tool by
its `tool_type`): its call carries the server's URL and headers instead of source code.

Every call of user code goes through a `ToolExecutor`. The adapter is chosen by
configuration (`CHORUS_TOOL_EXECUTOR`), never by the caller: the run machinery
only ever sees a `ToolCall` going in and a `ToolResult` coming out, so the
timeouts, output caps, cancellation and error shapes are the same whichever
adapter runs the call.

Cancellation is the caller's: cancelling the task awaiting `run` must end the
call promptly and kill whatever the tool started.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

__all__ = ["ToolCall", "ToolExecutor", "ToolResult"]


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a custom tool: its source, the function to call and the arguments."""

    tenant_id: str
    """Whose code this is: adapters that isolate tenants from each other key on it."""
    source_code: str
    name: str
    """The function in `source_code` to call."""
    arguments: Mapping[str, Any]
    timeout_s: float = 30.0
    return_char_limit: int = 50_000
    env: Mapping[str, str] = field(default_factory=dict)
    """Variables given to the tool explicitly; it inherits none of the server's."""
    server_url: str | None = None
    """The MCP server that runs the tool (`external_mcp` tools); `name` is then its MCP tool name."""
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    """Sent on every request to `server_url` (its auth token): secrets, so never in a repr."""


@dataclass(frozen=True)
class ToolResult:
    """One tool call's outcome, in the shape of Letta's tool return message."""

    value: str
    """The return value (`str` as is, else JSON, else `repr`), or what went wrong."""
    status: Literal["success", "error"]
    stdout: list[str] = field(default_factory=list)
    stderr: list[str] = field(default_factory=list)
    duration_s: float = 0.0


class ToolExecutor(Protocol):
    """Runs custom tools. Every failure of the tool is a `status="error"` result, never an exception."""

    name: str
    """The adapter's configuration name (`sandbox`, `lambda`, `subprocess`)."""
    isolates_tenants: bool
    """True when one tenant's tool can reach nothing of another's (nor the server's secrets)."""

    async def run(self, call: ToolCall) -> ToolResult: ...
