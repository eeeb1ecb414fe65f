"""`/docs`: the API's reference as a page that loads nothing from anywhere else.

FastAPI's Swagger UI and ReDoc pages fetch their JavaScript and CSS from a
public CDN: an outside party could change what runs in the page, with the
user's API key in reach, and offline they show nothing. This page is plain
HTML rendered here from the OpenAPI document (every operation: method, path,
summary, description) under a Content-Security-Policy that allows no script
and no request at all; `/openapi.json` stays the machine-readable document
for any OpenAPI tool.
"""

from __future__ import annotations

import html
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse

CONTENT_SECURITY_POLICY = "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
_METHODS = ("get", "post", "put", "patch", "delete")


def render(document: dict[str, Any], base: str) -> str:
    """The reference page of an OpenAPI document (every value HTML-escaped)."""
    info = document.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    rows = []
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            rows.append(
                "<tr><td><code>{}</code></td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>".format(
                    method.upper(),
                    html.escape(path),
                    html.escape(operation.get("summary", "")),
                    html.escape(operation.get("description", "")).replace("\n", "<br>"),
                )
            )
    return (
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>"
        f"<title>{title}</title></head><body><h1>{title}</h1>"
        f"<p>{html.escape(info.get('description', ''))}</p>"
        f"<p>The OpenAPI document: <a href='{html.escape(base, quote=True)}/openapi.json'>/openapi.json</a>.</p>"
        "<table><thead><tr><th>Method</th><th>Path</th><th>Summary</th><th>Description</th></tr></thead><tbody>"
        + "".join(rows)
        + "</tbody></table></body></html>"
    )


def install(app: FastAPI) -> None:
    """Serve `/docs` (the app is built with `docs_url=None, redoc_url=None`: no page loads a CDN)."""

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        base = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(
            render(app.openapi(), base),
            headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY, "X-Content-Type-Options": "nosniff"},
        )
