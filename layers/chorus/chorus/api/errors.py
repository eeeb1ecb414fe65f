"""Error responses: `{"detail": ...}` with the status the error carries.

Validation errors keep Letta's shape (`detail` is a readable string) and add
the structured `errors` list with field paths; a malformed id in a path also
gets `examples`, as Letta's 422 does.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from chorus.errors import ChorusError
from chorus.ids import example

logger = logging.getLogger(__name__)

_ID_PREFIXES = {"agent_id": "agent", "group_id": "group", "run_id": "run", "message_id": "message"}


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def _errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        item = {"type": err.get("type"), "loc": list(err.get("loc", ())), "msg": err.get("msg")}
        if "input" in err and isinstance(err["input"], str | int | float | bool | type(None)):
            item["input"] = err["input"]
        out.append(item)
    return out


async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = _errors(exc)
    detail = "; ".join(f"{_location(e['loc'])}: {e['msg']}" for e in errors) or "Invalid request."
    body: dict[str, Any] = {"detail": detail, "errors": errors}
    for e in errors:
        loc = e["loc"]
        if len(loc) == 2 and loc[0] == "path" and loc[1] in _ID_PREFIXES:
            body["examples"] = [example(_ID_PREFIXES[loc[1]])]
            break
    return JSONResponse(body, status_code=422)


async def _chorus(request: Request, exc: ChorusError) -> JSONResponse:
    if exc.status_code >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
    return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=exc.status_code)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s raised", request.method, request.url.path)
    return JSONResponse({"detail": "Internal server error."}, status_code=500)


def install(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ChorusError, _chorus)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
