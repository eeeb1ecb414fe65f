"""JSON request bodies parsed strictly: what `json.loads` lets through is refused with a 422.

FastAPI parses bodies with the standard library, which accepts `NaN` and
`Infinity` (not JSON: they broke the 422 handler and the stores), lone
surrogates such as `"\\ud800"` (not Unicode: they fail later, when a string is
encoded to be stored or sent), and any nesting depth (a deep enough body
exhausts the stack of whatever serialises it next). Routes declared with
`JsonRoute` parse with orjson instead, which refuses the first two, and then
bound the nesting to `MAX_JSON_DEPTH`; a refused body is a `json.JSONDecodeError`,
which FastAPI answers with a 422 that names the reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import Request, Response
from fastapi.routing import APIRoute

from chorus.limits import MAX_JSON_DEPTH


def loads(body: bytes) -> Any:
    """Parse a request body: orjson's strict JSON, nested at most `MAX_JSON_DEPTH` deep."""
    value = orjson.loads(body)
    if _depth_exceeds(value, MAX_JSON_DEPTH):
        raise json.JSONDecodeError(f"JSON nested deeper than {MAX_JSON_DEPTH} levels", "", 0)
    return value


def _depth_exceeds(value: Any, limit: int) -> bool:
    """True when arrays/objects nest more than `limit` deep (iterative: the check itself cannot overflow)."""
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


class StrictJsonRequest(Request):
    """A request whose `json()` is `loads`."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = loads(await self.body())
        return self._json


class JsonRoute(APIRoute):
    """An API route whose JSON body is parsed by `loads` (set as a router's `route_class`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive, request._send))

        return strict
