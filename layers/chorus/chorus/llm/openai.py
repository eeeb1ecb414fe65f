"""`openai/<model>`: OpenAI-compatible Chat Completions streaming (OpenAI, Ollama, vLLM, ...).

Uses the official `openai` SDK (the `chorus[openai]` extra) with its own
retries off: `chorus.llm.retry` is the one retry loop. `OPENAI_BASE_URL`
points the client at any compatible server; those need no API key. The
stream asks for `stream_options.include_usage`, so usage arrives in a last
chunk with no choices, after `finish_reason`; `Usage` and `Finish` are
yielded when the stream ends. Compatible servers that stream
`reasoning_content` (vLLM, DeepSeek, Ollama's `reasoning`) give reasoning
deltas. Divergence: no `name` on user messages (OpenAI restricts its
characters; the speaker is already in the text).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, Literal

from chorus.errors import InvalidModelResponse, ModelError, ModelNotAvailable
from chorus.llm.base import Finish, ModelEvent, ModelRequest, ReasoningDelta, TextDelta, ToolCallDelta, Usage
from chorus.llm.messages import map_sdk_error
from chorus.llm.retry import RetryPolicy
from chorus.llm.streaming import ClientCache, ProviderModel

try:
    import openai
    from openai.types.chat import ChatCompletionChunk
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ModelNotAvailable("The 'openai' provider needs the OpenAI SDK: pip install 'chorus[openai]'.") from _exc

_FINISH_REASON_MAP: dict[str, Literal["end_turn", "tool_use", "max_tokens"]] = {
    "stop": "end_turn",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "length": "max_tokens",
    "content_filter": "end_turn",
}


def _build_client(api_key: str | None, base_url: str | None, timeout_s: float) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(api_key=api_key or "not-needed", base_url=base_url, timeout=timeout_s, max_retries=0)


shared_clients = ClientCache(_build_client)
"""One SDK client (and connection pool) per configuration and event loop."""


def too_long(error: dict[str, Any]) -> bool:
    """Whether a 400's error object refuses the request as longer than the window: OpenAI's (and
    compatible servers') `"code": "context_length_exceeded"`, with a message like "This model's maximum
    context length is 128000 tokens. However, your messages resulted in 131000 tokens."."""
    return error.get("code") == "context_length_exceeded"


def map_error(exc: Exception) -> ModelError | None:
    """Translate an OpenAI SDK, transport or decoding exception into a `ModelError`; None for anything else."""
    return map_sdk_error(exc, openai, "OpenAI-compatible", too_long)


def request_params(request: ModelRequest, *, compatible: bool) -> dict[str, Any]:
    """The Chat Completions body for `request`."""
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for msg in request.messages:
        if msg.role == "tool":
            messages.append({"role": "tool", "tool_call_id": msg.tool_call_id, "content": msg.content})
        elif msg.role == "assistant" and msg.tool_calls:
            calls = [
                {"id": c.id, "type": "function", "function": {"name": c.name, "arguments": c.arguments}}
                for c in msg.tool_calls
            ]
            messages.append({"role": "assistant", "content": msg.content or None, "tool_calls": calls})
        else:
            messages.append({"role": msg.role, "content": msg.content})
    params: dict[str, Any] = {
        "model": request.model,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        params["tools"] = [
            {"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.parameters}}
            for t in request.tools
        ]
    if request.max_tokens is not None:
        # OpenAI's reasoning models refuse `max_tokens`; most compatible servers know only it.
        params["max_tokens" if compatible else "max_completion_tokens"] = request.max_tokens
    return params


class OpenAIStreamState:
    """Folds Chat Completions chunks into model events."""

    def __init__(self) -> None:
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        """The last usage reported: servers that repeat cumulative usage on every chunk count once."""

    def feed(self, chunk: ChatCompletionChunk) -> list[ModelEvent]:
        out: list[ModelEvent] = []
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            delta = choice.delta
            extra = delta.model_extra or {}
            reasoning = extra.get("reasoning_content") or extra.get("reasoning")
            if isinstance(reasoning, str) and reasoning:
                out.append(ReasoningDelta(reasoning))
            if delta.content:
                out.append(TextDelta(delta.content))
            for position, call in enumerate(delta.tool_calls or ()):
                function = call.function
                index = getattr(call, "index", None)  # a few compatible servers leave it out
                out.append(
                    ToolCallDelta(
                        index=index if isinstance(index, int) else position,
                        id=call.id,
                        name=function.name if function else None,
                        arguments=(function.arguments or "") if function else "",
                    )
                )
            if choice.finish_reason is not None:
                self.finish_reason = choice.finish_reason
        if chunk.usage is not None:
            usage = chunk.usage
            prompt = usage.prompt_tokens_details
            completion = usage.completion_tokens_details
            self.usage = Usage(
                prompt_tokens=usage.prompt_tokens or 0,
                completion_tokens=usage.completion_tokens or 0,
                cached_input_tokens=(prompt.cached_tokens or 0) if prompt else 0,
                reasoning_tokens=(completion.reasoning_tokens or 0) if completion else 0,
            )
        return out

    def finish(self) -> list[ModelEvent]:
        if self.finish_reason is None:
            raise InvalidModelResponse("The OpenAI-compatible stream ended without a finish reason.")
        usage: list[ModelEvent] = [self.usage] if self.usage is not None else []
        return [*usage, Finish(_FINISH_REASON_MAP.get(self.finish_reason, "end_turn"))]


class OpenAIModel(ProviderModel[ChatCompletionChunk]):
    """A Chat Completions model behind the `llm` port."""

    provider = "openai"

    def __init__(
        self, name: str, client: openai.AsyncOpenAI, *, compatible: bool = False, retry: RetryPolicy | None = None
    ) -> None:
        """Wrap an SDK client.

        Args:
            name: the model name the server knows (`gpt-4o`, `llama3.2`).
            client: an SDK client built with `max_retries=0`.
            compatible: the server is not api.openai.com (sends `max_tokens`).
            retry: the retry policy; `RetryPolicy()` by default.
        """
        super().__init__(name, retry=retry)
        self._client = client
        self._compatible = compatible

    async def _raw_events(self, request: ModelRequest) -> AsyncGenerator[ChatCompletionChunk, None]:
        stream = await self._client.chat.completions.create(**request_params(request, compatible=self._compatible))
        async with stream:
            async for chunk in stream:
                yield chunk

    def _new_state(self) -> OpenAIStreamState:
        return OpenAIStreamState()

    def _map_error(self, exc: Exception) -> ModelError | None:
        return map_error(exc)
