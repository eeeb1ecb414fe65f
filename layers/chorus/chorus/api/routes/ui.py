"""`/ui`: the run viewer, a single page served by the API itself (no build step, nothing else to deploy).

`/ui`, `/ui/groups/{group_id}` and `/ui/runs/{run_id}` all answer the same HTML shell; its
ES modules (`/ui/static/*.js`, plain files in `chorus/ui/static`, shipped in the package and
so in the Lambda layer) route on the URL and read the public `/v1` API, with the key the
user typed kept in the tab's `sessionStorage`. The viewer has no endpoint of its own: what it
shows, any Letta client can get.

The shell carries a Content-Security-Policy that allows this origin only (no inline script,
no external host), so the page cannot make an external request even if model output tried
to smuggle one in. Static files are revalidated on every load (`no-cache` with an ETag), so
a new deployment is never half old, half new. The page knows nothing about where it is
mounted: the shell gives it the app's `root_path` (a Function URL serves at `/`).
"""

from __future__ import annotations

import html
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).resolve().parents[2] / "ui" / "static"

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
SHELL_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(prefix="/ui", include_in_schema=False)


@cache
def _shell_template() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def shell(request: Request) -> HTMLResponse:
    """The page, told where the app is mounted (the `{{base}}` placeholder, HTML-escaped)."""
    base = html.escape(str(request.scope.get("root_path", "")).rstrip("/"), quote=True)
    return HTMLResponse(_shell_template().replace("{{base}}", base), headers=SHELL_HEADERS)


@router.api_route("", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def runs_page(request: Request) -> HTMLResponse:
    """Groups and recent runs, newest first, with live status."""
    return shell(request)


@router.get("/", response_model=None)
async def runs_page_slash(request: Request) -> Response:
    return RedirectResponse(str(request.scope.get("root_path", "")) + "/ui", status_code=307)


@router.api_route("/groups/{group_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def group_page(group_id: str, request: Request) -> HTMLResponse:
    """A group's conversation; send, follow, cancel, approve. The page checks the id with the API."""
    return shell(request)


@router.api_route("/runs/{run_id}", methods=["GET", "HEAD"], response_class=HTMLResponse)
async def run_page(run_id: str, request: Request) -> HTMLResponse:
    """One run, replayed from its event log and followed live while it runs."""
    return shell(request)


class _RevalidatedStatic(StaticFiles):
    """Static files that the browser revalidates (ETag) on each load instead of guessing freshness."""

    def file_response(self, *args: Any, **kwargs: Any) -> Response:
        response = super().file_response(*args, **kwargs)
        response.headers["Cache-Control"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response


async def root(request: Request) -> Response:
    """A person who opens the server's address lands on the viewer, not on a 404."""
    return RedirectResponse(str(request.scope.get("root_path", "")) + "/ui", status_code=307)


def install(app: FastAPI) -> None:
    """Add the viewer's pages, its static files, and `/` leading to them, to the app."""
    app.include_router(router)
    app.add_api_route("/", root, methods=["GET", "HEAD"], include_in_schema=False, response_model=None)
    app.mount("/ui/static", _RevalidatedStatic(directory=STATIC_DIR), name="ui-static")
