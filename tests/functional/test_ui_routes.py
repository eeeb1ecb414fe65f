"""The viewer's pages and static files as the app serves them (the browser suite is tests/ui)."""

from __future__ import annotations

import re
from collections.abc import Callable

import httpx
import pytest
from fastapi import FastAPI

from chorus.api.routes.ui import STATIC_DIR

PAGES = ["/ui", "/ui/groups/group-123e4567-e89b-42d3-8456-426614174000", "/ui/runs/run-anything"]


@pytest.mark.parametrize("path", PAGES)
async def test_every_page_is_the_shell_with_a_same_origin_policy(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "script-src 'self'" in policy
    assert '<script type="module" src="/ui/static/app.js">' in response.text
    assert "{{base}}" not in response.text


async def test_the_shell_follows_the_apps_root_path(make_app: Callable[..., FastAPI]) -> None:
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, root_path="/prod")
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            text = (await c.get("/ui")).text
    assert 'src="/prod/ui/static/app.js"' in text and 'data-base="/prod"' in text


async def test_static_files_are_revalidated_and_typed(client: httpx.AsyncClient) -> None:
    js = await client.get("/ui/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.headers["cache-control"] == "no-cache" and js.headers["etag"]
    again = await client.get("/ui/static/app.js", headers={"If-None-Match": js.headers["etag"]})
    assert again.status_code == 304
    assert (await client.get("/ui/static/app.css")).headers["content-type"].startswith("text/css")
    assert (await client.get("/ui/static/nope.js")).status_code == 404
    assert (await client.get("/ui/", follow_redirects=False)).headers["location"] == "/ui"


def test_the_page_code_makes_no_outside_request_and_parses_no_html() -> None:
    files = sorted(STATIC_DIR.glob("*.js")) + sorted(STATIC_DIR.glob("*.css")) + [STATIC_DIR / "index.html"]
    assert len(files) >= 10
    for file in files:
        text = file.read_text()
        assert not re.search(r"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", text, re.I), f"{file.name} names an outside host"
        for risky in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
            assert risky not in text, f"{file.name} uses {risky}"
    for module in STATIC_DIR.glob("*.js"):
        assert len(module.read_text().splitlines()) < 300, f"{module.name}: keep modules small"


async def test_the_root_leads_to_the_viewer(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 307
    assert response.headers["location"] == "/ui"
