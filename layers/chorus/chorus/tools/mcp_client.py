"""Listing and calling the tools of a tenant's MCP server: the official `mcp` SDK client over streamable HTTP.

Each call is one short connection (list, or call one tool), which suits the stateless MCP of
2026-07-28 and Lambda alike: nothing is kept between calls, so any worker can make any call. The
HTTP client under the SDK is ours: its connections pass the network policy (`GuardedBackend`),
it follows no redirect the SDK does not check, and it ignores the process's proxy variables (a
proxy would resolve the host where the policy cannot see it). The server's headers (its auth token)
go on every request and nowhere else: no message this module raises or logs carries them, nor the
URL's query string. The `mcp` SDK is imported on first use, so the API starts without it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import anyio
import orjson

from chorus.errors import BadRequest
from chorus.limits import MAX_MCP_REPLY_BYTES
from chorus.tools.mcp_policy import McpUrlPolicy, McpUrlRefused

if TYPE_CHECKING:
    import httpcore2
    from mcp import Client

__all__ = ["McpServerUnreachable", "McpToolInfo", "call_tool", "list_tools", "safe_url"]

logging.getLogger("httpx2").setLevel(logging.WARNING)
"""httpx2 (used by the SDK only) logs every request's full URL at INFO; a URL's query may hold a token."""


class McpServerUnreachable(BadRequest):
    """The MCP server could not be reached, refused our credentials or did not speak MCP (answered 400)."""


class McpReplyTooLarge(McpServerUnreachable):
    """The server sent more than `MAX_MCP_REPLY_BYTES` in one HTTP response: the rest is not read."""


@dataclass(frozen=True, slots=True)
class McpToolInfo:
    """One tool an MCP server lists."""

    name: str
    description: str | None
    input_schema: dict[str, Any]


@dataclass(frozen=True, slots=True)
class McpReply:
    """What one tool call returned: its content as text, and whether the tool reported an error."""

    text: str
    is_error: bool


def safe_url(url: str) -> str:
    """`url` without user info, query or fragment: what may appear in an error or a log."""
    try:
        parts = urlsplit(url)
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid url>"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{port}{parts.path}"


async def list_tools(url: str, headers: Mapping[str, str], policy: McpUrlPolicy, timeout_s: float) -> list[McpToolInfo]:
    """Every tool the server lists (all pages). `McpServerUnreachable` or `McpUrlRefused` when it cannot."""
    tools: list[McpToolInfo] = []
    async with _connected(url, headers, policy, timeout_s) as client:
        cursor: str | None = None
        for _ in range(100):
            page = await client.list_tools(cursor=cursor, cache_mode="bypass")
            tools.extend(McpToolInfo(t.name, t.description, dict(t.input_schema)) for t in page.tools)
            cursor = page.next_cursor
            if cursor is None:
                break
    return tools


async def call_tool(
    url: str,
    headers: Mapping[str, str],
    policy: McpUrlPolicy,
    name: str,
    arguments: Mapping[str, Any],
    timeout_s: float,
) -> McpReply:
    """Call tool `name`. A tool's own failure is an `is_error` reply; a server that cannot be reached,
    or that answers with an MCP error, raises `McpServerUnreachable` (or `McpUrlRefused`)."""
    async with _connected(url, headers, policy, timeout_s) as client:
        result = await client.call_tool(name, dict(arguments), read_timeout_seconds=timeout_s)
    return McpReply(_text(result.content, result.structured_content), result.is_error)


def _text(content: Iterable[Any], structured: Any) -> str:
    """The reply as the model reads it: text parts joined, other parts as JSON (structured content if no text)."""
    parts: list[str] = []
    for block in content:
        if getattr(block, "type", None) == "text":
            parts.append(str(block.text))
        else:
            parts.append(orjson.dumps(block.model_dump(mode="json", by_alias=True, exclude_none=True)).decode())
    if not parts and structured is not None:
        return orjson.dumps(structured).decode()
    return "\n".join(parts)


@asynccontextmanager
async def _connected(
    url: str, headers: Mapping[str, str], policy: McpUrlPolicy, timeout_s: float
) -> AsyncIterator[Client]:
    """An MCP session with the server, every failure to hold one turned into `McpServerUnreachable`."""
    policy.check_url(url)
    from mcp import Client  # the SDK (and its HTTP stack) loads where MCP is used, not at start-up
    from mcp.client.streamable_http import streamable_http_client

    shown = safe_url(url)
    statuses: list[int] = []
    try:
        with anyio.fail_after(timeout_s):
            async with (
                _http_client(headers, policy, timeout_s, statuses) as http,
                Client(
                    streamable_http_client(url, http_client=http),
                    cache=None,
                    read_timeout_seconds=timeout_s,
                    mode="auto",
                ) as client,
            ):
                yield client
    except (McpUrlRefused, McpServerUnreachable):
        raise
    except TimeoutError:
        raise McpServerUnreachable(f"The MCP server at {shown} did not answer within {timeout_s:g} s.") from None
    except Exception as exc:
        ours = _find(exc)
        if ours is not None:
            raise type(ours)(ours.detail) from None
        raise McpServerUnreachable(f"Cannot use the MCP server at {shown}: {_describe(exc, statuses)}") from None


def _find(exc: BaseException) -> BadRequest | None:
    """Our own refusal inside `exc` (an exception group, or its cause chain), if there."""
    seen: set[int] = set()
    stack = [exc]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, McpUrlRefused | McpReplyTooLarge):
            return current
        if isinstance(current, BaseExceptionGroup):
            stack.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                stack.append(linked)
    return None


def _describe(exc: BaseException, statuses: list[int]) -> str:
    """What went wrong, in words that carry no header, token or query string."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    status = getattr(getattr(exc, "response", None), "status_code", None) or next(
        (s for s in reversed(statuses) if s >= 400), None
    )
    if status in (401, 403):
        return f"it answered {status}: check auth_header and auth_token (or custom_headers)."
    if status is not None:
        return f"it answered HTTP {status}."
    name = type(exc).__name__
    if "Connect" in name or isinstance(exc, OSError):
        return "the connection failed (is the server running, and is server_url its MCP endpoint?)."
    code = getattr(getattr(exc, "error", None), "code", None)
    message = getattr(getattr(exc, "error", None), "message", None)
    if code is not None:
        return f"it answered MCP error {code}: {str(message)[:200]}"
    return f"{name}."


def _http_client(headers: Mapping[str, str], policy: McpUrlPolicy, timeout_s: float, statuses: list[int]) -> Any:
    """The SDK's HTTP client: policy-guarded connections, our timeout, and the statuses it met (for errors)."""
    import httpx2

    async def note(response: httpx2.Response) -> None:
        statuses.append(response.status_code)

    class Capped(httpx2.AsyncByteStream):
        """A response body that fails with `McpReplyTooLarge` past `MAX_MCP_REPLY_BYTES`."""

        def __init__(self, inner: httpx2.AsyncByteStream) -> None:
            self.inner = inner

        async def __aiter__(self) -> AsyncIterator[bytes]:
            seen = 0
            async for chunk in self.inner:
                seen += len(chunk)
                if seen > MAX_MCP_REPLY_BYTES:
                    raise McpReplyTooLarge(f"The MCP server's reply is longer than {MAX_MCP_REPLY_BYTES} bytes.")
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    class CappedTransport(httpx2.AsyncHTTPTransport):
        """Reads at most `MAX_MCP_REPLY_BYTES` of each response: a server's reply is the tenant's input."""

        async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
            response = await super().handle_async_request(request)
            if isinstance(response.stream, httpx2.AsyncByteStream):
                response.stream = Capped(response.stream)
            return response

    transport = CappedTransport(trust_env=False)
    transport._pool = _pool(policy)
    return httpx2.AsyncClient(
        headers=dict(headers),
        timeout=httpx2.Timeout(timeout_s),
        transport=transport,
        trust_env=False,
        follow_redirects=False,
        event_hooks={"response": [note]},
    )


def _pool(policy: McpUrlPolicy) -> httpcore2.AsyncConnectionPool:
    import httpcore2

    return httpcore2.AsyncConnectionPool(
        ssl_context=httpcore2.default_ssl_context(), network_backend=guarded_backend(policy)
    )


def guarded_backend(policy: McpUrlPolicy) -> httpcore2.AsyncNetworkBackend:
    """A network backend that connects only to addresses `policy` allows (resolving the host itself)."""
    import httpcore2
    from httpcore2._backends.auto import AutoBackend

    class GuardedBackend(httpcore2.AsyncNetworkBackend):
        def __init__(self) -> None:
            self.inner = AutoBackend()

        async def connect_tcp(
            self,
            host: str,
            port: int,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
            local_address: str | None = None,
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.AsyncNetworkStream:
            addresses = await policy.resolve(host, port)
            last: Exception | None = None
            for address in addresses:
                try:
                    return await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
                except httpcore2.ConnectError as exc:
                    last = exc
            raise last or httpcore2.ConnectError(f"no address for {host!r}")

        async def connect_unix_socket(
            self,
            path: str,
            timeout: float | None = None,  # noqa: ASYNC109 - httpcore2's interface
            socket_options: Iterable[Any] | None = None,
        ) -> httpcore2.AsyncNetworkStream:
            raise McpUrlRefused("MCP servers are reached over TCP only.")

        async def sleep(self, seconds: float) -> None:
            await self.inner.sleep(seconds if math.isfinite(seconds) else 0)

    return GuardedBackend()
