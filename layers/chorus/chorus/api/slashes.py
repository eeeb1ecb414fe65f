"""`<collection>/` served as `<collection>`: the Letta SDKs call `POST /v1/agents/`, `GET /v1/groups/`, ….

The app does not redirect (`redirect_slashes=False`: a 307 would lose a POST
body on some clients), and a second route per method for the slashed path
costs as much as the route itself at import (FastAPI analyses every route's
parameters and builds its validators when it is declared: ~7 ms each here,
13 routes). Instead, a request for a collection path with one trailing slash
is routed as the path without it: same handler, same status (405 with the
same `Allow` for another method), and, as before, nothing in the OpenAPI
document. Only collection paths, the routes at their router's prefix, are
aliased; any other path keeps its slash (and its 404).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from fastapi import APIRouter
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send


def collection_paths(routers: Iterable[APIRouter]) -> list[re.Pattern[str]]:
    """The path patterns of the routes at their router's prefix (`/v1/agents`, `/v1/agents/{agent_id}/tools`)."""
    found: dict[str, re.Pattern[str]] = {}
    for router in routers:
        for route in router.routes:
            if isinstance(route, APIRoute) and router.prefix and route.path == router.prefix:
                found[route.path] = route.path_regex
    return list(found.values())


class CollectionSlash:
    """ASGI middleware: `<collection>/` is routed as `<collection>`."""

    def __init__(self, app: ASGIApp, patterns: list[re.Pattern[str]]) -> None:
        self.app = app
        self.patterns = patterns

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope = self._unslashed(scope)
        await self.app(scope, receive, send)

    def _unslashed(self, scope: Scope) -> Scope:
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        routed = path[len(root) :] if root and path.startswith(root) else path
        if len(routed) < 2 or not routed.endswith("/"):
            return scope
        if not any(p.match(routed[:-1]) for p in self.patterns):
            return scope
        child: dict[str, Any] = {**scope, "path": path[:-1]}
        raw = scope.get("raw_path")
        if isinstance(raw, bytes) and raw.endswith(b"/"):
            child["raw_path"] = raw[:-1]
        return child
