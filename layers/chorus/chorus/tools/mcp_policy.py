"""Where a tenant's MCP server may be: the network policy that keeps `server_url` from being an SSRF.

A tenant names a URL and the server connects to it with its own network position, so a hostile
tenant could aim it at what only the server can reach: the cloud metadata endpoint (credentials),
the server's own loopback, a private network behind it. The policy, checked on every connection:

- `http` or `https` only, a host, no user info (credentials in a URL end up in logs and listings).
- Never: link-local (`169.254.0.0/16`, `fe80::/10`, where the AWS/GCP/Azure metadata endpoints
  live, and `fd00:ec2::254`), unspecified, multicast, broadcast and reserved addresses.
- Loopback and private ranges (RFC 1918, CGNAT `100.64.0.0/10`, IPv6 ULA): allowed when
  `CHORUS_MCP_PRIVATE_NETWORKS=allow`, refused with `deny`; `auto` (the default) allows them for a
  single tenant (a local server, where an MCP server on loopback is the normal case and the tenant
  is the operator) and refuses them when several tenants share the server (`chorus.tenancy`).
- `CHORUS_MCP_ALLOWED_HOSTS` names hosts the operator trusts (an internal MCP server): allowed
  whatever they resolve to, link-local excepted.

The check runs where the connection is made (`GuardedBackend`): the host is resolved once, every
address it resolves to is checked, and the connection goes to a checked address, so a name that
resolves to a public address when the server is created and to a private one later (DNS
rebinding) is refused too. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import anyio

from chorus.errors import BadRequest
from chorus.settings import Settings
from chorus.tenancy import multi_tenant

__all__ = ["McpUrlPolicy", "McpUrlRefused", "policy_for"]

_ALWAYS_REFUSED = (
    ipaddress.ip_network("169.254.0.0/16"),
    ipaddress.ip_network("fe80::/10"),
    ipaddress.ip_network("fd00:ec2::254/128"),
)
"""Link-local: the metadata endpoints of the clouds (credentials of the server's role)."""

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class McpUrlRefused(BadRequest):
    """An MCP server URL the network policy does not allow (answered 400)."""


@dataclass(frozen=True, slots=True)
class McpUrlPolicy:
    allow_private: bool
    """Loopback and private ranges may be reached."""
    allowed_hosts: frozenset[str] = frozenset()
    """Hosts trusted by the operator (lower-case): any address but link-local."""

    def check_url(self, url: str) -> tuple[str, int]:
        """The URL's host and port, or `McpUrlRefused` for a URL no MCP request may go to."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise McpUrlRefused(f"server_url is not a valid URL: {exc}.") from None
        if parts.scheme not in ("http", "https"):
            raise McpUrlRefused("server_url must be an http:// or https:// URL.")
        if not parts.hostname:
            raise McpUrlRefused("server_url has no host.")
        if parts.username is not None or parts.password is not None:
            raise McpUrlRefused(
                "server_url must not carry credentials: send them with auth_header/auth_token or custom_headers."
            )
        return parts.hostname.lower(), port or (443 if parts.scheme == "https" else 80)

    def check_address(self, host: str, address: IpAddress) -> None:
        """Refuse `address` (one address `host` resolved to) unless the policy allows it."""
        if address.version == 6 and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if any(address in net for net in _ALWAYS_REFUSED) or address.is_link_local:
            raise McpUrlRefused(f"MCP server host {host!r} resolves to a link-local address, which is never allowed.")
        if address.is_unspecified or address.is_multicast:
            raise McpUrlRefused(f"MCP server host {host!r} resolves to an address MCP requests may not go to.")
        if address.is_loopback or address.is_private or address in ipaddress.ip_network("100.64.0.0/10"):
            if host in self.allowed_hosts or self.allow_private:
                return
            raise McpUrlRefused(
                f"MCP server host {host!r} resolves to a loopback or private address, which this server does not "
                "reach for its tenants (CHORUS_MCP_PRIVATE_NETWORKS, CHORUS_MCP_ALLOWED_HOSTS)."
            )
        if address.is_reserved:
            raise McpUrlRefused(f"MCP server host {host!r} resolves to an address MCP requests may not go to.")

    async def resolve(self, host: str, port: int) -> list[str]:
        """Every address `host` resolves to, each checked; `McpUrlRefused` if any is refused."""
        try:
            literal: IpAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(host, literal)
            return [str(literal)]
        try:
            infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise McpUrlRefused(f"MCP server host {host!r} does not resolve: {exc.strerror or exc}.") from None
        addresses = list(dict.fromkeys(_addresses(infos)))
        for address in addresses:
            self.check_address(host, ipaddress.ip_address(address))
        return addresses


def _addresses(infos: Iterable[tuple[Any, ...]]) -> Iterable[str]:
    for info in infos:
        yield str(info[4][0]).split("%", 1)[0]


def policy_for(settings: Settings) -> McpUrlPolicy:
    """The policy `settings` ask for (`auto`: private networks for a single tenant only)."""
    mode = settings.mcp_private_networks
    allow_private = mode == "allow" or (mode == "auto" and not multi_tenant(settings))
    hosts = frozenset(h.strip().lower() for h in settings.mcp_allowed_hosts.split(",") if h.strip())
    return McpUrlPolicy(allow_private=allow_private, allowed_hosts=hosts)
