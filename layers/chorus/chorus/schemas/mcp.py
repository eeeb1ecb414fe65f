"""MCP servers as the API accepts and returns them (Letta's `CreateStreamableHTTPMcpServer`, `StreamableHTTPMcpServer`).

Only streamable HTTP servers are accepted. The stdio and SSE shapes are parsed so that they can be
refused with a clear 400 (`chorus.api.routes.mcp_servers`), never mistaken for something else: a stdio
server is a command this server would start for a tenant, which it never does.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Discriminator, Field, Tag

from chorus.limits import MAX_MCP_HEADERS, MAX_MCP_SECRET_CHARS, MAX_URL_CHARS
from chorus.schemas.content import BodyModel

HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$"
"""An HTTP header name (RFC 9110 token)."""
HEADER_VALUE = r"^[^\r\n\x00]*$"
"""A header value: no line breaks or NUL, which would split or end the request."""

RESERVED_HEADERS = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "upgrade", "te", "trailer", "keep-alive",
     "proxy-authorization", "content-type", "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"}
)  # fmt: skip
"""Headers the HTTP client and the MCP transport set themselves: a tenant's value would corrupt the request."""


def _not_reserved(name: str) -> str:
    if name.lower() in RESERVED_HEADERS:
        raise ValueError(f"the {name} header is set by the MCP client and cannot be configured")
    return name


SecretValue = Annotated[str, Field(max_length=MAX_MCP_SECRET_CHARS, pattern=HEADER_VALUE)]
HeaderName = Annotated[str, Field(pattern=HEADER_NAME), AfterValidator(_not_reserved)]


class StreamableHttpConfig(BodyModel):
    mcp_server_type: Literal["streamable_http"] = "streamable_http"
    server_url: str = Field(min_length=1, max_length=MAX_URL_CHARS)
    auth_header: HeaderName | None = None
    auth_token: SecretValue | None = None
    custom_headers: dict[HeaderName, SecretValue] | None = Field(default=None, max_length=MAX_MCP_HEADERS)


class StreamableHttpUpdate(BodyModel):
    """Every field optional: what is sent replaces what is stored (a masked value sent back keeps it)."""

    mcp_server_type: Literal["streamable_http"] = "streamable_http"
    server_url: str | None = Field(default=None, min_length=1, max_length=MAX_URL_CHARS)
    auth_header: HeaderName | None = None
    auth_token: SecretValue | None = None
    custom_headers: dict[HeaderName, SecretValue] | None = Field(default=None, max_length=MAX_MCP_HEADERS)


class RefusedTransport(BodyModel):
    """A stdio or SSE server's config: accepted by the parser only to be refused by name."""

    model_config = ConfigDict(extra="allow")

    mcp_server_type: str | None = None

    @property
    def transport(self) -> str:
        return transport_of(self.model_dump())


def transport_of(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("mcp_server_type") or value.get("type")
        if kind in ("stdio", "sse", "streamable_http"):
            return str(kind)
        return "stdio" if "command" in value else "streamable_http"
    return str(getattr(value, "mcp_server_type", None) or "streamable_http")


McpConfig = Annotated[
    Annotated[StreamableHttpConfig, Tag("streamable_http")]
    | Annotated[RefusedTransport, Tag("stdio")]
    | Annotated[RefusedTransport, Tag("sse")],
    Discriminator(transport_of),
]
McpConfigUpdate = Annotated[
    Annotated[StreamableHttpUpdate, Tag("streamable_http")]
    | Annotated[RefusedTransport, Tag("stdio")]
    | Annotated[RefusedTransport, Tag("sse")],
    Discriminator(transport_of),
]


class McpServerCreate(BodyModel):
    server_name: str = Field(min_length=1, max_length=256)
    config: McpConfig


class McpServerUpdate(BodyModel):
    server_name: str | None = Field(default=None, min_length=1, max_length=256)
    config: McpConfigUpdate


class McpToolRun(BodyModel):
    args: dict[str, Any] = Field(default_factory=dict)


class McpServerState(BaseModel):
    """`StreamableHTTPMcpServer`: the token and header values masked (`chorus.api.mcp_views.mask`)."""

    id: str
    server_name: str
    server_url: str
    auth_header: str | None = None
    auth_token: str | None = None
    custom_headers: dict[str, str] | None = None
    mcp_server_type: Literal["streamable_http"] = "streamable_http"


class McpRefreshSummary(BaseModel):
    """What a refresh changed, by MCP tool name."""

    added: list[str]
    updated: list[str]
    deleted: list[str]


class ToolExecution(BaseModel):
    """Letta's `ToolExecutionResult`."""

    status: Literal["success", "error"]
    func_return: str
    stdout: list[str] = Field(default_factory=list)
    stderr: list[str] = Field(default_factory=list)
