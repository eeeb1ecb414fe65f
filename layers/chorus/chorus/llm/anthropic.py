"""`anthropic/<model>`: Anthropic Messages streaming (the `chorus[anthropic]` extra).

The raw event stream (`messages.create(stream=True)`) is folded here:
`message_start` carries input usage, `content_block_start/delta/stop` carry
text, tool use (`input_json_delta`) and thinking (`thinking_delta`, then one
`signature_delta`), `message_delta` the stop reason and output usage. Tool
calls are numbered 0, 1, ... in the order their blocks start (block indexes
also count text and thinking blocks). `enable_reasoning` turns extended
thinking on with half the token budget. Redacted thinking blocks carry no
readable text and are not surfaced. The SDK's retries are off;
`chorus.llm.retry` is the one retry loop.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

from chorus.errors import InvalidModelResponse, ModelError, ModelNotAvailable
from chorus.llm.base import (
    Finish,
    ModelEvent,
    ModelMessage,
    ModelRequest,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallRequest,
    Usage,
)
from chorus.llm.messages import alternating_turns, map_sdk_error, tool_input
from chorus.llm.retry import RetryPolicy
from chorus.llm.streaming import ClientCache, ProviderModel

try:
    import anthropic
    from anthropic.types import RawMessageStreamEvent
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ModelNotAvailable(
        "The 'anthropic' provider needs the Anthropic SDK: pip install 'chorus[anthropic]'."
    ) from _exc

DEFAULT_MAX_TOKENS = 8192
"""Anthropic requires `max_tokens`; this is used when the request sets none."""
MIN_THINKING_BUDGET = 1024

_FINISH_REASON_MAP: dict[str, Literal["end_turn", "tool_use", "max_tokens"]] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "pause_turn": "end_turn",
    "refusal": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}


def _build_client(api_key: str, base_url: str | None, timeout_s: float) -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0)


shared_clients = ClientCache(_build_client)
"""One SDK client (and connection pool) per configuration and event loop."""


_TOO_LONG = ("prompt is too long", "input length and `max_tokens` exceed context limit")
"""How the message of an `invalid_request_error` starts when the request does not fit (see `too_long`)."""


def too_long(error: dict[str, Any]) -> bool:
    """Whether a 400's error object refuses the request as longer than the window.

    Anthropic has no code for it: the answer is a 400 `invalid_request_error` whose message starts
    with one of two sentences, then the counts, as reported verbatim in public issue threads:
    `{"type": "error", "error": {"type": "invalid_request_error", "message": "prompt is too long:
    200251 tokens > 200000 maximum"}, "request_id": "req_…"}` (the input alone; boldsoftware/exe.dev#62,
    earendil-works/pi#102) and "input length and `max_tokens` exceed context limit: 199759 + 8192 >
    200000, decrease input length or `max_tokens` and try again" (the input plus the room asked for the
    answer; continuedev/continue#6080, anthropics/claude-code#228). Summarising the input answers both.
    Other `invalid_request_error`s (roles not alternating, a bad parameter) are not this, hence the
    prefixes rather than any mention of length.
    """
    message = str(error.get("message") or "").lower()
    return error.get("type") == "invalid_request_error" and message.startswith(_TOO_LONG)


def map_error(exc: Exception) -> ModelError | None:
    """Translate an Anthropic SDK, transport or decoding exception into a `ModelError`; None for anything else."""
    return map_sdk_error(exc, anthropic, "Anthropic", too_long)


def _tool_use(call: ToolCallRequest) -> dict[str, Any]:
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": tool_input(call.arguments)}


def _tool_result(msg: ModelMessage) -> dict[str, Any]:
    return {"type": "tool_result", "tool_use_id": msg.tool_call_id, "content": msg.content}


def _thinking(reasoning: Reasoning) -> dict[str, Any] | None:
    """A thinking block sent back as received; unsigned reasoning (another provider's) is dropped."""
    if not reasoning.signature:
        return None
    return {"type": "thinking", "thinking": reasoning.text, "signature": reasoning.signature}


def request_params(request: ModelRequest) -> dict[str, Any]:
    """The Messages API body for `request`."""
    max_tokens = request.max_tokens or DEFAULT_MAX_TOKENS
    params: dict[str, Any] = {
        "model": request.model,
        "messages": alternating_turns(
            request.messages,
            text=lambda t: {"type": "text", "text": t},
            tool_use=_tool_use,
            tool_result=_tool_result,
            reasoning=_thinking,
        ),
        "stream": True,
    }
    if request.system:
        params["system"] = request.system
    if request.tools:
        params["tools"] = [
            {"name": t.name, "description": t.description, "input_schema": t.parameters} for t in request.tools
        ]
    if request.enable_reasoning:
        budget = max(MIN_THINKING_BUDGET, max_tokens // 2)
        max_tokens = max(max_tokens, budget + MIN_THINKING_BUDGET)
        params["thinking"] = {"type": "enabled", "budget_tokens": budget}
    params["max_tokens"] = max_tokens
    return params


class AnthropicStreamState:
    """Folds raw Messages stream events into model events."""

    def __init__(self) -> None:
        self.tools: dict[int, int] = {}
        """Content block index to tool call ordinal."""
        self.input_tokens = 0
        self.cache_read = 0
        self.cache_write = 0
        self.output_tokens = 0
        self.stop_reason: str | None = None
        self.stopped = False

    def feed(self, event: RawMessageStreamEvent) -> list[ModelEvent]:
        if event.type == "message_start":
            usage = event.message.usage
            self.input_tokens = usage.input_tokens
            self.cache_read = usage.cache_read_input_tokens or 0
            self.cache_write = usage.cache_creation_input_tokens or 0
            self.output_tokens = usage.output_tokens
        elif event.type == "content_block_start":
            block = event.content_block
            if block.type == "tool_use":
                ordinal = self.tools[event.index] = len(self.tools)
                return [ToolCallDelta(ordinal, id=block.id, name=block.name)]
            if block.type == "text" and block.text:
                return [TextDelta(block.text)]
            if block.type == "thinking" and block.thinking:
                return [ReasoningDelta(block.thinking)]
        elif event.type == "content_block_delta":
            delta = event.delta
            if delta.type == "text_delta":
                return [TextDelta(delta.text)]
            if delta.type == "input_json_delta":
                if event.index not in self.tools:
                    raise InvalidModelResponse(f"input_json_delta for block {event.index}, which is not a tool call")
                return (
                    [ToolCallDelta(self.tools[event.index], arguments=delta.partial_json)] if delta.partial_json else []
                )
            if delta.type == "thinking_delta":
                return [ReasoningDelta(delta.thinking)]
            if delta.type == "signature_delta":
                return [ReasoningDelta("", signature=delta.signature)]
        elif event.type == "message_delta":
            self.stop_reason = event.delta.stop_reason or self.stop_reason
            # Cumulative counts; input counts are repeated here only by newer API versions.
            totals = event.usage
            self.output_tokens = totals.output_tokens
            if totals.input_tokens is not None:
                self.input_tokens = totals.input_tokens
            if totals.cache_read_input_tokens is not None:
                self.cache_read = totals.cache_read_input_tokens
            if totals.cache_creation_input_tokens is not None:
                self.cache_write = totals.cache_creation_input_tokens
        elif event.type == "message_stop":
            self.stopped = True
        return []

    def finish(self) -> list[ModelEvent]:
        if not self.stopped or self.stop_reason is None:
            raise InvalidModelResponse("The Anthropic stream ended before message_stop.")
        usage = Usage(
            prompt_tokens=self.input_tokens + self.cache_read + self.cache_write,
            completion_tokens=self.output_tokens,
            cached_input_tokens=self.cache_read,
            cache_write_tokens=self.cache_write,
        )
        return [usage, Finish(_FINISH_REASON_MAP.get(self.stop_reason, "end_turn"))]


class AnthropicModel(ProviderModel[RawMessageStreamEvent]):
    """A Claude model behind the `llm` port."""

    provider = "anthropic"

    def __init__(self, name: str, client: anthropic.AsyncAnthropic, *, retry: RetryPolicy | None = None) -> None:
        """Wrap an SDK client.

        Args:
            name: the model name (`claude-sonnet-4-5`).
            client: an SDK client built with `max_retries=0`.
            retry: the retry policy; `RetryPolicy()` by default.
        """
        super().__init__(name, retry=retry)
        self._client = client

    async def _raw_events(self, request: ModelRequest) -> AsyncGenerator[RawMessageStreamEvent, None]:
        stream = await self._client.messages.create(**request_params(request))
        async with stream:
            async for event in stream:
                yield event

    def _new_state(self) -> AnthropicStreamState:
        return AnthropicStreamState()

    def _map_error(self, exc: Exception) -> ModelError | None:
        return map_error(exc)
