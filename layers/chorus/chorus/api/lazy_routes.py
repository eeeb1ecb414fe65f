"""Route modules imported by the first request that needs them, not when the app is built.

The same holds for the run viewer (`/`, `/ui…`) and the reference page (`/docs`).

Building the app is most of a Lambda cold start that Chorus adds to FastAPI's
own: FastAPI analyses every route when it is declared, and the route modules
import the request and response models, the run machinery and the store
records. So the app is built with no `/v1` route, and a request for
`/v1/<resource>…` first imports and includes the modules of that resource (a
health check imports one small module; a group send, the groups' two). The
Lambda Web Adapter's readiness check therefore costs almost nothing, and a
function that only ever serves group sends never imports the tools routes.

Paths of one resource are only ever matched by its own modules, so which
other resources are loaded changes no answer: a 404 or 405 is the same
before and after. The OpenAPI document (and `/docs`) includes every module
first. `load_all` imports everything at once, for a SnapStart snapshot.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from chorus.api.slashes import collection_paths

RESOURCES: dict[str, tuple[str, ...]] = {
    "groups": ("group_messages", "groups"),
    "runs": ("runs",),
    "health": ("health",),
    "agents": ("agent_messages", "agents", "agent_memory", "agent_tools"),
    "blocks": ("blocks",),
    "tools": ("tools",),
    "mcp-servers": ("mcp_servers",),
    "models": ("models",),
}
"""`/v1/<resource>` → the modules of `chorus.api.routes` serving it, hot paths first (routes match in order)."""
ALL = tuple(name for names in RESOURCES.values() for name in names)
PAGES = {"ui": "chorus.api.routes.ui", "docs": "chorus.api.api_docs"}
"""Modules that add their pages to the app themselves (`install(app)`)."""


class RouteModules:
    """The `/v1` route modules of one app, included on demand."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.loaded: set[str] = set()
        self.collection_patterns: list[re.Pattern[str]] = []
        """Paths of the loaded collections, for `CollectionSlash` (extended as modules load)."""
        document: Callable[[], dict[str, Any]] = app.openapi

        def openapi() -> dict[str, Any]:
            self.load_all()
            return document()

        app.openapi = openapi  # type: ignore[method-assign]

    def for_path(self, path: str) -> tuple[str, ...]:
        """The modules a request for `path` needs (none outside `/v1/<known resource>` and the pages)."""
        if path in ("/", "/ui") or path.startswith("/ui/"):
            return ("ui",)
        if path == "/docs":
            return ("docs",)
        parts = path.split("/", 3)
        if len(parts) < 3 or parts[0] or parts[1] != "v1":
            return ()
        return RESOURCES.get(parts[2], ())

    def load(self, names: tuple[str, ...]) -> None:
        for name in names:
            if name in self.loaded:
                continue
            if name in PAGES:
                importlib.import_module(PAGES[name]).install(self.app)
                self.loaded.add(name)
                continue
            router = importlib.import_module(f"chorus.api.routes.{name}").router
            self.app.include_router(router)
            self.collection_patterns.extend(collection_paths([router]))
            self.loaded.add(name)

    def load_all(self) -> None:
        self.load(ALL)


class LazyRoutes:
    """ASGI middleware: include the route modules a request needs before it is routed."""

    def __init__(self, app: ASGIApp, modules: RouteModules) -> None:
        self.app = app
        self.modules = modules

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            self.modules.load(self.modules.for_path(path[len(root) :] if root and path.startswith(root) else path))
        await self.app(scope, receive, send)
