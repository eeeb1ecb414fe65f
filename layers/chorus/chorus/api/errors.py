"""Error responses: `{"detail": ...}` with the status this module's table gives the error.

Domain errors know nothing of HTTP; `STATUS` maps each class (the nearest
entry up its class tree wins) and `RUN_ERROR_STATUS` a failed run's
`error_type` for a non-streaming answer, so both live in one place.

Validation errors keep Letta's shape (`detail` is a readable string) and add
the structured `errors` list with field paths; a malformed id in a path also
gets `examples`, as Letta's 422 does. The OpenAPI document describes that
body (`ValidationErrorBody`), not FastAPI's default one (`detail` a list),
which no response of this app has (found by schemathesis, `tests/fuzz`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict
from starlette.exceptions import HTTPException as StarletteHTTPException

from chorus.errors import (
    BadRequest,
    ChorusError,
    Conflict,
    IdempotencyKeyReused,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
    NotFound,
    RunExpired,
    StorageUnavailable,
    ToolExecutionUnavailable,
    TooManyActiveRuns,
    Unauthorized,
)
from chorus.ids import example

logger = logging.getLogger(__name__)


STATUS: dict[type[ChorusError], int] = {
    ChorusError: 500,
    BadRequest: 400,
    IdempotencyKeyReused: 422,
    Unauthorized: 401,
    NotFound: 404,
    Conflict: 409,
    RunExpired: 410,
    TooManyActiveRuns: 429,
    StorageUnavailable: 503,
    ToolExecutionUnavailable: 503,
    ModelError: 502,
    ModelRateLimited: 429,
    ModelTimeout: 504,
    ModelAuthError: 401,
}
"""HTTP status of each domain error; a class not listed answers as its nearest listed ancestor."""

RUN_ERROR_STATUS = {"llm_rate_limit": 429, "llm_timeout": 504, "llm_error": 502, "internal_error": 500}
"""HTTP status of a failed run by its error event's `error_type` (non-streaming answers)."""


def status_of(exc: ChorusError) -> int:
    return next(STATUS[cls] for cls in type(exc).__mro__ if cls in STATUS)


def headers_of(exc: ChorusError) -> dict[str, str]:
    """The headers the error's response carries: when to try again, for the active-run limit."""
    if isinstance(exc, TooManyActiveRuns):
        return {"Retry-After": str(exc.retry_after_s)}
    return {}


class FieldError(BaseModel):
    """One invalid field: where (`loc`), what (`type`, `msg`) and the value sent, when it is a scalar."""

    model_config = ConfigDict(defer_build=True)

    type: str
    loc: list[str | int]
    msg: str
    input: str | int | float | bool | None = None


class ValidationErrorBody(BaseModel):
    """Every 422 of this app: a readable `detail`; for invalid fields their list, for a malformed id `examples`."""

    model_config = ConfigDict(defer_build=True)

    detail: str
    errors: list[FieldError] | None = None
    examples: list[str] | None = None


_ID_PREFIXES = {"agent_id": "agent", "group_id": "group", "run_id": "run", "message_id": "message"}


_ECHO_CHARS = 200
"""How much of an invalid string value a 422 echoes back."""


def _text(value: object, limit: int | None = None) -> str:
    """`value` as a string that always encodes: a lone surrogate is shown escaped (`\\ud800`), long text is cut."""
    text = str(value)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _echo(value: Any) -> str | int | float | bool | None:
    """The invalid input as a 422 may send it back: a scalar that serialises, whatever the client sent."""
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    return _text(value, _ECHO_CHARS)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(_text(part, _ECHO_CHARS) for part in loc)


def _message(err: Mapping[str, Any]) -> str:
    """The error's message; for a body that is not (acceptable) JSON, with the parser's reason."""
    msg = _text(err.get("msg", ""))
    reason = (err.get("ctx") or {}).get("error")
    if err.get("type") == "json_invalid" and reason:
        msg = f"{msg}: {_text(reason, _ECHO_CHARS)}"
    return msg


SECRET_FIELDS = frozenset({"auth_token", "custom_headers"})
"""Fields whose invalid value a 422 never echoes: they hold credentials (an MCP server's)."""


def _errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [part if isinstance(part, int) else _text(part, _ECHO_CHARS) for part in err.get("loc", ())]
        item: dict[str, Any] = {"type": _text(err.get("type")), "loc": loc, "msg": _message(err)}
        secret = any(part in SECRET_FIELDS for part in loc)
        if "input" in err and not secret and isinstance(err["input"], str | int | float | bool | type(None)):
            item["input"] = _echo(err["input"])
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
    status = status_of(exc)
    if status >= 500:
        logger.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
    return JSONResponse({"detail": exc.detail, **exc.extra}, status_code=status, headers=headers_of(exc) or None)


async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    logger.exception("%s %s raised", request.method, request.url.path)
    return JSONResponse({"detail": "Internal server error."}, status_code=500)


def _openapi(app: FastAPI) -> dict[str, Any]:
    """FastAPI's document, with the 422 body this app really sends in place of FastAPI's default."""
    if app.openapi_schema is None:
        document = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = document.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            body = ValidationErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
            schemas.update(body.pop("$defs", {}))
            schemas["HTTPValidationError"] = body
            schemas.pop("ValidationError", None)
        app.openapi_schema = document
    return app.openapi_schema


def install(app: FastAPI) -> None:
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    app.add_exception_handler(RequestValidationError, _validation)  # type: ignore[arg-type]
    app.add_exception_handler(ChorusError, _chorus)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http)  # type: ignore[arg-type]
    app.add_exception_handler(Exception, _unexpected)
