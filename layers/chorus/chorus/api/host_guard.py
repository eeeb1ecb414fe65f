"""ASGI middleware: a server without API keys answers only requests a web page cannot forge.

A keyless server trusts whoever can send it a request. A web page the user
visits can send one: by DNS rebinding (the page's own host name made to resolve
to 127.0.0.1, so the browser sends `Host: evil.example`) it can even read the
answers, create a tool and run Python on the user's machine. So, while
`HttpPolicy.allowed_hosts` is set, a request whose `Host` is not in it is
refused (403), and so is an unsafe method (POST, PUT, PATCH, DELETE) whose
`Origin` is not the server's own loopback origin: a page may still make the
browser send a simple cross-origin POST, which needs no CORS approval.
A request without `Host` or `Origin` comes from no browser and is let through.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from chorus.api.http_policy import HttpPolicy, host_name
from chorus.api.refusal import refuse

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class HostGuard:
    def __init__(self, app: ASGIApp, policy: HttpPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        allowed = self.policy.allowed_hosts
        if allowed is None or scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        host = origin = None
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
        if host is not None and host_name(host) not in allowed:
            await refuse(
                send,
                403,
                f"Host {host_name(host)!r} is not allowed: a server without API keys answers only "
                "CHORUS_ALLOWED_HOSTS (loopback by default), so a web page cannot reach it through DNS rebinding.",
            )
            return
        if origin is not None and scope["method"] not in _SAFE_METHODS and not _same_origin(origin, host, allowed):
            await refuse(
                send,
                403,
                f"Origin {origin[:100]!r} may not {scope['method']} here: a server without API keys accepts "
                "changes from its own pages only, so another site cannot drive it from the user's browser.",
            )
            return
        await self.app(scope, receive, send)


def _same_origin(origin: str, host: str | None, allowed: frozenset[str]) -> bool:
    """`Origin` names this very server (scheme-less `host:port` equal to `Host`) under an allowed name."""
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme.lower() not in ("http", "https") or host is None:
        return False
    return authority.lower() == host.strip().lower() and host_name(authority) in allowed
