"""The 422 handler answers whatever input it is given: it never fails on the value it echoes."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from fastapi.exceptions import RequestValidationError
from starlette.requests import Request

from chorus.api.errors import _validation


def _request() -> Request:
    return Request({"type": "http", "method": "POST", "path": "/v1/agents", "headers": []})


@pytest.mark.parametrize(
    ("value", "echoed"),
    [
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
        ("a\ud800b", "a\\ud800b"),
        (10**30, 10**30),
        ("x" * 10_000, "x" * 200 + "…"),
        ([[[[[]]]]], None),
    ],
)
async def test_the_handler_serialises_any_input(value: Any, echoed: Any) -> None:
    error = {
        "type": "int_parsing",
        "loc": ("body", "a\udc00", 3),
        "msg": "Input should be \ud800 valid",
        "input": value,
    }
    response = await _validation(_request(), RequestValidationError([error]))
    body = json.loads(bytes(response.body))
    assert response.status_code == 422
    assert body["errors"][0]["loc"] == ["body", "a\\udc00", 3]
    assert body["errors"][0].get("input") == echoed
    assert "\\ud800 valid" in body["detail"]


async def test_a_json_decode_error_says_why() -> None:
    error = {
        "type": "json_invalid",
        "loc": ("body", 7),
        "msg": "JSON decode error",
        "input": {},
        "ctx": {"error": "no low surrogate"},
    }
    response = await _validation(_request(), RequestValidationError([error]))
    assert json.loads(bytes(response.body))["detail"] == "body.7: JSON decode error: no low surrogate"
