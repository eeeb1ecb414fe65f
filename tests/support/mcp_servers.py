"""A real MCP server (the official `mcp` SDK's `MCPServer`, streamable HTTP) on a loopback port, in a thread.

Its tools have schemas (`add`, `echo`, `shout`), one sleeps (`slow`, for timeouts and cancel),
one returns a lot (`big`, for output caps) and one takes the server down while it is being called
(`vanish`). Every request must carry the auth header, else 401; the headers of every request are
recorded, so a test sees what Chorus sent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from mcp.server.mcpserver import MCPServer

from support.threaded_server import serve_in_thread

TOKEN = "Bearer mcp-test-token-0123456789"
"""The `Authorization` value the server requires."""


@dataclass
class McpTestServer:
    url: str
    seen_headers: list[dict[str, str]] = field(default_factory=list)
    server: uvicorn.Server | None = None
    slow_started: int = 0
    slow_cancelled: int = 0
    """Calls of `slow` begun, and interrupted (the client went away) before they answered."""

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
            self.server.force_exit = True


def _mcp(state: McpTestServer, extra_tools: bool) -> MCPServer[Any]:
    mcp: MCPServer[Any] = MCPServer("chorus-test-tools")

    @mcp.tool()
    def add(a: int, b: int) -> str:
        """Add two integers.

        Args:
            a: The first addend.
            b: The second addend.
        """
        return str(a + b)

    @mcp.tool()
    def echo(text: str) -> str:
        """Return the text unchanged."""
        return text

    @mcp.tool()
    async def slow(seconds: float) -> str:
        """Sleep, then answer."""
        state.slow_started += 1
        try:
            await asyncio.sleep(seconds)
        except asyncio.CancelledError:
            state.slow_cancelled += 1
            raise
        return "woke up"

    @mcp.tool()
    def big(n: int) -> str:
        """Return n characters."""
        return "x" * n

    @mcp.tool()
    async def vanish() -> str:
        """Take the server down while this call is answered."""
        state.stop()
        await asyncio.sleep(30)
        return "never"

    if extra_tools:

        @mcp.tool()
        def shout(text: str) -> str:
            """Upper-case the text."""
            return text.upper()

    return mcp


class _RequireAuth:
    def __init__(self, app: Any, state: McpTestServer) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
            self.state.seen_headers.append(headers)
            if headers.get("authorization") != TOKEN:
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"unauthorized"})
                return
        await self.app(scope, receive, send)


@contextmanager
def mcp_server(*, extra_tools: bool = False) -> Iterator[McpTestServer]:
    """The server running on `127.0.0.1:<free port>/mcp` until the block ends."""
    state = McpTestServer(url="")
    app = _RequireAuth(_mcp(state, extra_tools).streamable_http_app(stateless_http=True, json_response=True), state)
    with serve_in_thread(app) as (url, server):
        state.url, state.server = f"{url}/mcp", server
        yield state
