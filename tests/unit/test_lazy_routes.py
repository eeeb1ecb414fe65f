"""Route modules are included by the first request that needs them, and that changes no answer.

`chorus.api.lazy_routes` maps `/v1/<resource>` to the modules serving it; a
module whose routes strayed outside its resource would be missing when a
request for them came first, so the map is checked against the routes.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute

from chorus.api import create_app
from chorus.api.lazy_routes import ALL, RESOURCES
from chorus.settings import Settings


@pytest.mark.parametrize(("resource", "module"), [(r, m) for r, ms in RESOURCES.items() for m in ms])
def test_each_module_serves_only_its_resource(resource: str, module: str) -> None:
    router = importlib.import_module(f"chorus.api.routes.{module}").router
    paths = [r.path for r in router.routes if isinstance(r, APIRoute)]
    assert paths
    assert all(p == f"/v1/{resource}" or p.startswith(f"/v1/{resource}/") for p in paths)


def test_every_route_module_is_mapped() -> None:
    modules = Path(importlib.import_module("chorus.api.routes").__file__ or "").parent
    found = {p.stem for p in modules.glob("*.py")} - {"__init__", "ui"}
    assert found == set(ALL)


REQUESTS = [
    ("GET", "/v1/health"),
    ("POST", "/v1/health"),
    ("GET", "/v1/agents/"),
    ("DELETE", "/v1/agents"),
    ("GET", "/v1/agents/agent-00000000-0000-4000-8000-000000000000/core-memory/blocks"),
    ("GET", "/v1/groups/group-00000000-0000-4000-8000-000000000000/messages"),
    ("GET", "/v1/nothing"),
    ("GET", "/nothing"),
    ("GET", "/ui"),
    ("GET", "/"),
    ("GET", "/docs"),
]


async def answers(settings: Settings, *, everything_first: bool) -> list[tuple[int, str, str]]:
    app = create_app(settings)
    if everything_first:
        app.state.routes.load_all()
    out = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for method, path in REQUESTS:
                response = await client.request(method, path)
                out.append((response.status_code, response.headers.get("allow", ""), response.text[:200]))
    return out


async def test_answers_are_the_same_whether_routes_load_lazily_or_all_at_once(tmp_path: Path) -> None:
    lazy = await answers(Settings(db_path=tmp_path / "lazy.db"), everything_first=False)
    eager = await answers(Settings(db_path=tmp_path / "eager.db"), everything_first=True)
    assert lazy == eager
    assert [status for status, _, _ in lazy] == [200, 405, 200, 405, 404, 404, 404, 404, 200, 307, 200]


async def test_a_request_loads_only_its_resources_modules(tmp_path: Path) -> None:
    app = create_app(Settings(db_path=tmp_path / "c.db"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            assert app.state.routes.loaded == set()
            assert (await client.get("/v1/health")).status_code == 200
            assert app.state.routes.loaded == {"health"}
            assert (await client.get("/v1/groups")).status_code == 200
            assert app.state.routes.loaded == {"health", "groups", "group_messages"}


def test_the_openapi_document_is_complete_whenever_it_is_asked_for(tmp_path: Path) -> None:
    first = create_app(Settings(db_path=tmp_path / "a.db")).openapi()
    loaded = create_app(Settings(db_path=tmp_path / "b.db"))
    loaded.state.routes.load_all()
    assert first["paths"] == loaded.openapi()["paths"]
    assert {p.split("/")[2] for p in first["paths"]} == set(RESOURCES)
