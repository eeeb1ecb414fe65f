"""The ToolRunner Lambda function: one custom tool call per invocation, run by `run_tool` inside the function.

The function exists so hostile tool code runs somewhere that holds nothing
worth stealing: its role may write its own logs and nothing else, and with
Lambda's tenant isolation mode its execution environments only ever serve the
tenant whose id the invocation carries. Inside, the tool runs exactly as on a
server: a child interpreter with a minimal environment, in a scratch directory
under `/tmp` (the only writable place), with the same timeout, output caps and
error shapes, so the model reads the same whichever executor ran the call.

The request is refused (`ToolRequestRefused`, a function error the executor
reports) unless it is a JSON object of the right shape within the size
bounds of `chorus.tools.runner_wire`. The response is fitted under Lambda's
response limit, so a tool printing megabytes of escape-heavy text still gets
an answer with explicit truncation markers rather than a failed invocation.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from pydantic import ValidationError

from chorus.tools.runner_wire import REQUEST_BYTE_LIMIT, RESPONSE_BYTE_LIMIT, ToolRunRequest, ToolRunResponse
from chorus.tools.sandbox import run_tool

__all__ = ["RESERVED_S", "ToolRequestRefused", "fit_response", "handler", "parse_request"]

RESERVED_S = 3.0
"""Time kept back from the invocation's deadline to end the child and return, so Lambda never kills the handler."""


class ToolRequestRefused(ValueError):
    """The event is not a tool request this function runs (its type, shape or size)."""


def handler(event: Any, context: Any) -> dict[str, Any]:
    """Lambda entry point: validate, run the tool in a child interpreter, return a `ToolRunResponse` as JSON."""
    request = parse_request(event)
    result = asyncio.run(
        run_tool(
            request.source,
            request.name,
            request.arguments,
            timeout_s=_within_deadline(request.timeout_s, context),
            return_char_limit=request.return_char_limit,
            env=request.env,
        )
    )
    return fit_response(ToolRunResponse.of(result)).model_dump()


def parse_request(event: Any) -> ToolRunRequest:
    """The request in `event`, or `ToolRequestRefused` saying what is wrong (never echoing the input)."""
    if not isinstance(event, dict):
        raise ToolRequestRefused(f"the request must be a JSON object, not {type(event).__name__}")
    try:
        size = len(json.dumps(event, ensure_ascii=False).encode())
    except (TypeError, ValueError, RecursionError) as exc:
        raise ToolRequestRefused(f"the request cannot be measured: {type(exc).__name__}") from None
    if size > REQUEST_BYTE_LIMIT:
        raise ToolRequestRefused(f"the request is {size} bytes, more than {REQUEST_BYTE_LIMIT}")
    try:
        return ToolRunRequest.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'request'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise ToolRequestRefused(f"invalid request: {problems}") from None


def _within_deadline(timeout_s: float, context: Any) -> float:
    """The tool's timeout, shortened when the invocation would end first (a function timeout set too low)."""
    remaining_ms = getattr(context, "get_remaining_time_in_millis", None)
    if remaining_ms is None:
        return timeout_s
    return max(0.1, min(timeout_s, float(remaining_ms()) / 1000 - RESERVED_S))


def fit_response(response: ToolRunResponse, limit: int = RESPONSE_BYTE_LIMIT) -> ToolRunResponse:
    """`response`, cut to at most `limit` bytes of ASCII-escaped JSON (an upper bound of what Lambda sends).

    Only escape-heavy output needs it (a control character is 6 bytes in JSON):
    the sandbox's caps keep ordinary output far below the limit. Half the room
    goes to the value, a quarter to each stream; each cut ends with a marker.
    """
    if _size(response.model_dump()) <= limit:
        return response
    room = (limit - 4096) // 4
    value, cut = _cut_text(response.value, 2 * room)
    if cut:
        value += f"\n[... {cut} more characters cut: the tool runner's response is limited to {limit} bytes]"
    return response.model_copy(
        update={
            "value": value,
            "stdout": _cut_lines(response.stdout, room, "stdout", limit),
            "stderr": _cut_lines(response.stderr, room, "stderr", limit),
        }
    )


def _size(value: Any) -> int:
    return len(json.dumps(value))


def _cut_text(text: str, room: int) -> tuple[str, int]:
    """The longest prefix of `text` whose JSON string takes at most `room` bytes, and how many characters are cut."""
    if _size(text) <= room:
        return text, 0
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if _size(text[:middle]) <= room:
            low = middle
        else:
            high = middle - 1
    return text[:low], len(text) - low


def _cut_lines(lines: list[str], room: int, stream: str, limit: int) -> list[str]:
    kept: list[str] = []
    used = 0
    for index, line in enumerate(lines):
        size = _size(line) + 2  # the comma and space between items
        if used + size > room:
            part, _ = _cut_text(line, room - used)
            if part:
                kept.append(part)
            more = len(lines) - index
            kept.append(
                f"[... {more} more lines of {stream} cut: the tool runner's response is limited to {limit} bytes]"
            )
            return kept
        kept.append(line)
        used += size
    return kept
