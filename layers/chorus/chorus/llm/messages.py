"""Mapping helpers the provider adapters share: HTTP statuses to errors, tool inputs, alternating turns."""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from chorus.errors import (
    ContextTooLong,
    InvalidModelResponse,
    ModelAuthError,
    ModelError,
    ModelRateLimited,
    ModelTimeout,
)
from chorus.llm.base import ModelMessage, Reasoning, ToolCallRequest

Block = dict[str, Any]


def error_for_status(status: int, detail: str, *, retry_after_s: float | None = None) -> ModelError:
    """The `ModelError` for a provider's HTTP error status.

    429 is a rate limit; 408 and 504 are timeouts; 401/403 are credentials;
    other 5xx (and Anthropic's 529 "overloaded") are transient; the rest of
    4xx is a request the provider will never accept, so not retried.
    """
    if status == 429:
        return ModelRateLimited(detail, retry_after_s=retry_after_s)
    if status in (408, 504):
        return ModelTimeout(detail, retry_after_s=retry_after_s)
    if status in (401, 403):
        return ModelAuthError(detail)
    return ModelError(detail, retryable=status >= 500, retry_after_s=retry_after_s)


def error_for_type(kind: str | None, detail: str) -> ModelError:
    """The `ModelError` for an error *event* inside a stream that began with 200, by the error's type or code.

    Such errors are reported as in OpenAI's `{"error": {"type": ...}}` and
    Anthropic's `event: error` (`rate_limit_error`, `overloaded_error`, ...).
    """
    kind = (kind or "").lower()
    if "rate_limit" in kind:
        return ModelRateLimited(detail)
    if "timeout" in kind:
        return ModelTimeout(detail)
    if "authentication" in kind or "permission" in kind:
        return ModelAuthError(detail)
    return ModelError(detail, retryable="invalid_request" not in kind)


def retry_after_s(headers: Mapping[str, str]) -> float | None:
    """Seconds from `retry-after-ms` or `retry-after` (seconds or an HTTP date), if the provider sent one."""
    millis = headers.get("retry-after-ms")
    if millis is not None:
        try:
            return float(millis) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        return None if parsed is None else max(email.utils.mktime_tz(parsed) - time.time(), 0.0)


def tool_input(arguments: str) -> dict[str, Any]:
    """A tool call's arguments as the JSON object Anthropic and Bedrock want back in history."""
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {"_raw_arguments": arguments}
    return value if isinstance(value, dict) else {"_value": value}


def alternating_turns(
    messages: tuple[ModelMessage, ...],
    *,
    text: Callable[[str], Block],
    tool_use: Callable[[ToolCallRequest], Block],
    tool_result: Callable[[ModelMessage], Block],
    reasoning: Callable[[Reasoning], Block | None] = lambda _: None,
) -> list[dict[str, Any]]:
    """Messages as strictly alternating `user`/`assistant` turns of content blocks (Anthropic, Bedrock).

    Tool results travel in user turns and consecutive same-role messages are
    merged into one turn. An assistant message's signed reasoning goes first, as
    `reasoning` renders it (both APIs want it back before tool use when thinking
    is on). Mid-conversation system messages become user text (neither API
    accepts them there); empty texts are dropped (both reject them).
    """
    turns: list[dict[str, Any]] = []
    for msg in messages:
        blocks: list[Block] = []
        if msg.role == "tool":
            role = "user"
            blocks.append(tool_result(msg))
        else:
            role = "assistant" if msg.role == "assistant" else "user"
            blocks.extend(b for b in map(reasoning, msg.reasoning) if b is not None)
            body = f"[system] {msg.content}" if msg.role == "system" else msg.content
            if body:
                blocks.append(text(body))
            blocks.extend(tool_use(call) for call in msg.tool_calls)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def transport_error(exc: BaseException) -> ModelError | None:
    """The `ModelError` for an HTTP transport failure mid-stream (httpx or its fork), else None.

    The SDKs wrap transport errors raised while sending a request, but not
    those raised while a streamed body is being read, so adapters map these too.
    """
    names = {
        cls.__name__ for cls in type(exc).__mro__ if cls.__module__.split(".")[0] in ("httpx", "httpx2", "httpcore")
    }
    if "TimeoutException" in names or "ReadTimeout" in names:
        return ModelTimeout(f"The model stream timed out: {type(exc).__name__}")
    if "TransportError" in names or "NetworkError" in names or "ProtocolError" in names:
        return ModelError(f"The model stream broke off: {type(exc).__name__}: {exc}", retryable=True)
    return None


def map_sdk_error(
    exc: Exception, sdk: ModuleType, label: str, too_long: Callable[[dict[str, Any]], bool]
) -> ModelError | None:
    """Translate an exception of a Stainless-generated SDK (`openai`, `anthropic`) into a `ModelError`.

    Both SDKs share one exception tree: `APITimeoutError` < `APIConnectionError`
    < `APIError`, `APIStatusError` (with `status_code`, `response`, `body`),
    `APIResponseValidationError`. An error *event* inside a stream that began
    with 200 arrives as a bare `APIError` (OpenAI) or an `APIStatusError` with
    status 200 (Anthropic) and is classified by its type. Transport errors
    while reading the body and undecodable chunks are mapped too; anything
    else is not an SDK error and gives None. A 400 whose error object
    `too_long` recognises (each provider says it its own way) is `ContextTooLong`.
    """
    if isinstance(exc, sdk.APITimeoutError):
        return ModelTimeout(f"The {label} API timed out: {exc}")
    if isinstance(exc, sdk.APIStatusError) and exc.status_code >= 400:
        detail = f"{label} API error {exc.status_code}: {exc.message}"
        error = error_object(exc.body)
        if exc.status_code == 400 and error is not None and too_long(error):
            return ContextTooLong(detail)
        return error_for_status(exc.status_code, detail, retry_after_s=retry_after_s(exc.response.headers))
    if isinstance(exc, sdk.APIResponseValidationError):
        return InvalidModelResponse(f"Malformed response from the {label} API: {exc.message}")
    if isinstance(exc, sdk.APIConnectionError):
        return ModelError(f"Could not reach the {label} API: {exc.message}", retryable=True)
    if isinstance(exc, sdk.APIError):
        return error_for_type(_error_kind(exc.body), f"{label} API error in the stream: {exc.message}")
    mapped = transport_error(exc)
    if mapped is None and isinstance(exc, ValueError | AttributeError | TypeError | KeyError):
        mapped = InvalidModelResponse(f"Malformed stream from the {label} API: {type(exc).__name__}: {exc}")
    return mapped


def error_object(body: object) -> dict[str, Any] | None:
    """The error object of an error body: OpenAI's SDK hands over `{"message", "type", "code"}` itself,
    Anthropic's the whole `{"type": "error", "error": {...}}`."""
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    return body if isinstance(body, dict) else None


def _error_kind(body: object) -> str | None:
    error = error_object(body)
    if error is None:
        return None
    kind = error.get("type") or error.get("code")
    return str(kind) if kind else None
