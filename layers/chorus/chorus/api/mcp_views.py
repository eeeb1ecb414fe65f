"""How an MCP server leaves the API: its secrets masked.

The auth token and every custom header value are credentials: the API shows only enough to tell
them apart (`****` and the last four characters of a value of 16 or more, else `****`). A client
that reads a server and sends it back (`retrieve` then `update`) sends the masks; a masked value
equal to the stored secret's mask keeps the stored secret, so a round trip never overwrites it.
"""

from __future__ import annotations

from chorus.schemas.mcp import McpServerState
from chorus.store.records import McpServerRecord

MASK = "****"


def mask(secret: str) -> str:
    return MASK + secret[-4:] if len(secret) >= 16 else MASK


def unmask(sent: str, stored: str | None) -> str:
    """`sent`, unless it is the mask of `stored` (a value read back from the API): then `stored`."""
    return stored if stored is not None and sent == mask(stored) else sent


def mcp_server_state(server: McpServerRecord) -> McpServerState:
    return McpServerState(
        id=server.id,
        server_name=server.server_name,
        server_url=server.server_url,
        auth_header=server.auth_header,
        auth_token=mask(server.auth_token) if server.auth_token is not None else None,
        custom_headers={k: mask(v) for k, v in server.custom_headers.items()} or None,
    )
