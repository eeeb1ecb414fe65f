"""`bedrock/<model-id>`: Amazon Bedrock `ConverseStream` through boto3 (the `chorus[aws]` extra).

boto3 is synchronous, so the call and the iteration of its EventStream run
on a worker thread per stream that hands events to the loop through a queue
(invariant 5: never block the event loop); a dedicated thread rather than the
default executor, because a stream holds its thread for as long as the model
talks and fifty parallel agents would starve the pool DynamoDB calls share.
When the consumer stops early the stream is closed, which ends the thread.

Events: `messageStart`, `contentBlockStart` (tool use: id and name),
`contentBlockDelta` (`text`, `toolUse.input` pieces, `reasoningContent`
text or signature), `contentBlockStop`, `messageStop` (`stopReason`),
`metadata` (usage). Errors inside the stream arrive as botocore
`EventStreamError` (a `ClientError`) named after the exception event.
botocore's own retries are off; `chorus.llm.retry` is the one retry loop.
`enable_reasoning` asks Anthropic models on Bedrock for extended thinking.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncGenerator, Iterator
from functools import cache
from typing import Any, Literal

from chorus.errors import (
    ContextTooLong,
    InvalidModelResponse,
    ModelAuthError,
    ModelError,
    ModelNotAvailable,
    ModelRateLimited,
    ModelTimeout,
)
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
from chorus.llm.messages import alternating_turns, tool_input
from chorus.llm.retry import RetryPolicy
from chorus.llm.streaming import ProviderModel

try:
    import boto3
    import botocore.config
    import botocore.eventstream
    import botocore.exceptions
    import urllib3.exceptions
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise ModelNotAvailable("The 'bedrock' provider needs boto3: pip install 'chorus[aws]'.") from _exc

logger = logging.getLogger(__name__)

MIN_THINKING_BUDGET = 1024
DEFAULT_MAX_TOKENS = 8192
"""Used for the thinking budget when reasoning is on and the request sets no limit."""

_FINISH_REASON_MAP: dict[str, Literal["end_turn", "tool_use", "max_tokens"]] = {
    "end_turn": "end_turn",
    "stop_sequence": "end_turn",
    "guardrail_intervened": "end_turn",
    "content_filtered": "end_turn",
    "tool_use": "tool_use",
    "max_tokens": "max_tokens",
    "model_context_window_exceeded": "max_tokens",
}

_RATE_LIMITED = {
    "throttlingexception",
    "servicequotaexceededexception",
    "modelnotreadyexception",
    "toomanyrequestsexception",
}
_TIMEOUT = {"modeltimeoutexception"}
_TRANSIENT = {"internalserverexception", "serviceunavailableexception", "modelstreamerrorexception"}
_AUTH = {
    "accessdeniedexception",
    "unrecognizedclientexception",
    "expiredtokenexception",
    "invalidsignatureexception",
    "incompletesignatureexception",
}

_TOO_LONG = (
    "input is too long",
    "prompt is too long",
    "exceed context limit",
    "too many input tokens",
    "maximum context length is",
)
"""How a `ValidationException` says the input is longer than the model's window (see `too_long`)."""


def too_long(code: str, message: str) -> bool:
    """Whether a Bedrock error refuses the request as longer than the model's window.

    Bedrock has no error code of its own for it: it is a `ValidationException` (HTTP 400, or a
    `validationException` event inside the stream) whose message passes on the model's words.
    Reported verbatim: "The model returned the following errors: Input is too long for requested
    model." (Converse with Claude; continuedev/continue#6005 and #9592; the same sentence as a stream
    event in aws-samples/bedrock-chat#95), "The model returned the following errors: prompt is too
    long: 200049 tokens > 200000 maximum" (Claude's own wording passed on; daisuke-awaji/moca#254; also
    its "input length and `max_tokens` exceed context limit: …"), and, for models of other families,
    "Too many input tokens. Max input tokens: 8192, request input token count: 9279" and Llama's "This
    model's maximum context length is 8192 tokens. Please reduce the length of the prompt" (collected
    in client code that parses Bedrock's errors). Any other ValidationException (a malformed message,
    a tool name Bedrock rejects, `maxTokens` over the model's limit) stays a plain, non-retryable
    `ModelError`.
    """
    text = message.lower()
    return code.lower() == "validationexception" and any(phrase in text for phrase in _TOO_LONG)


@cache
def shared_client(region: str, timeout_s: float, endpoint_url: str | None = None) -> Any:
    """One `bedrock-runtime` client per region and process (boto3 clients are thread-safe)."""
    config = botocore.config.Config(
        read_timeout=timeout_s,
        connect_timeout=min(timeout_s, 10.0),
        retries={"total_max_attempts": 1, "mode": "standard"},
        max_pool_connections=64,
    )
    return boto3.client("bedrock-runtime", region_name=region, endpoint_url=endpoint_url, config=config)


def map_error(exc: Exception) -> ModelError | None:
    """Translate a botocore exception into a `ModelError`; None for anything else."""
    if isinstance(exc, botocore.exceptions.ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        detail = f"Bedrock {code}: {error.get('Message') or exc}"
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        key = code.lower()
        if too_long(code, str(error.get("Message") or "")):
            return ContextTooLong(detail)
        if key in _RATE_LIMITED or status == 429:
            return ModelRateLimited(detail)
        if key in _TIMEOUT or status in (408, 504):
            return ModelTimeout(detail)
        if key in _AUTH or status in (401, 403):
            return ModelAuthError(detail)
        return ModelError(detail, retryable=key in _TRANSIENT or (isinstance(status, int) and status >= 500))
    timeouts = (
        botocore.exceptions.ReadTimeoutError,
        botocore.exceptions.ConnectTimeoutError,
        urllib3.exceptions.TimeoutError,
    )
    if isinstance(exc, timeouts):
        # While the body streams, urllib3's own exceptions surface unwrapped.
        return ModelTimeout(f"Bedrock timed out: {exc}")
    if isinstance(exc, urllib3.exceptions.HTTPError | botocore.exceptions.ResponseStreamingError):
        return ModelError(f"The Bedrock stream broke off: {exc}", retryable=True)
    if isinstance(exc, botocore.exceptions.NoCredentialsError | botocore.exceptions.PartialCredentialsError):
        return ModelAuthError(f"Bedrock: no usable AWS credentials: {exc}")
    if isinstance(exc, botocore.exceptions.HTTPClientError | botocore.exceptions.EndpointConnectionError):
        return ModelError(f"Could not reach Bedrock: {exc}", retryable=True)
    if isinstance(exc, botocore.eventstream.ParserError):
        return InvalidModelResponse(f"Malformed event stream from Bedrock: {exc}")
    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return ModelError(f"Bedrock call failed: {exc}")
    return None


def _tool_use(call: ToolCallRequest) -> dict[str, Any]:
    return {"toolUse": {"toolUseId": call.id, "name": call.name, "input": tool_input(call.arguments)}}


def _tool_result(msg: ModelMessage) -> dict[str, Any]:
    # Converse rejects blank text blocks, and a tool may well return nothing.
    return {"toolResult": {"toolUseId": msg.tool_call_id, "content": [{"text": msg.content or "(no output)"}]}}


def _reasoning_block(reasoning: Reasoning) -> dict[str, Any] | None:
    """Signed reasoning sent back as Converse wants it; unsigned reasoning is dropped."""
    if not reasoning.signature:
        return None
    return {"reasoningContent": {"reasoningText": {"text": reasoning.text, "signature": reasoning.signature}}}


def request_params(request: ModelRequest) -> dict[str, Any]:
    """The `converse_stream` arguments for `request`."""
    params: dict[str, Any] = {
        "modelId": request.model,
        "messages": alternating_turns(
            request.messages,
            text=lambda t: {"text": t},
            tool_use=_tool_use,
            tool_result=_tool_result,
            reasoning=_reasoning_block,
        ),
    }
    if request.system:
        params["system"] = [{"text": request.system}]
    if request.tools:
        params["toolConfig"] = {
            "tools": [
                {"toolSpec": {"name": t.name, "description": t.description, "inputSchema": {"json": t.parameters}}}
                for t in request.tools
            ]
        }
    max_tokens = request.max_tokens
    if request.enable_reasoning:
        budget = max(MIN_THINKING_BUDGET, (max_tokens or DEFAULT_MAX_TOKENS) // 2)
        max_tokens = max(max_tokens or DEFAULT_MAX_TOKENS, budget + MIN_THINKING_BUDGET)
        params["additionalModelRequestFields"] = {"thinking": {"type": "enabled", "budget_tokens": budget}}
    if max_tokens is not None:
        params["inferenceConfig"] = {"maxTokens": max_tokens}
    return params


class BedrockStreamState:
    """Folds ConverseStream events into model events."""

    def __init__(self) -> None:
        self.tools: dict[int, int] = {}
        """Content block index to tool call ordinal."""
        self.stop_reason: str | None = None
        self.usage: Usage | None = None

    def feed(self, event: dict[str, Any]) -> list[ModelEvent]:
        if "contentBlockStart" in event:
            start = event["contentBlockStart"]
            tool = start.get("start", {}).get("toolUse")
            if tool is not None:
                ordinal = self.tools[start["contentBlockIndex"]] = len(self.tools)
                return [ToolCallDelta(ordinal, id=tool["toolUseId"], name=tool["name"])]
        elif "contentBlockDelta" in event:
            body = event["contentBlockDelta"]
            delta = body["delta"]
            if "text" in delta:
                return [TextDelta(delta["text"])] if delta["text"] else []
            if "toolUse" in delta:
                index = body["contentBlockIndex"]
                if index not in self.tools:
                    raise InvalidModelResponse(f"toolUse delta for block {index}, which is not a tool call")
                piece = delta["toolUse"].get("input", "")
                return [ToolCallDelta(self.tools[index], arguments=piece)] if piece else []
            reasoning = delta.get("reasoningContent")
            if reasoning is not None:
                if reasoning.get("text"):
                    return [ReasoningDelta(reasoning["text"])]
                if reasoning.get("signature"):
                    return [ReasoningDelta("", signature=reasoning["signature"])]
        elif "messageStop" in event:
            self.stop_reason = event["messageStop"].get("stopReason", "end_turn")
        elif "metadata" in event:
            usage = event["metadata"].get("usage", {})
            cache_read = usage.get("cacheReadInputTokens", 0)
            cache_write = usage.get("cacheWriteInputTokens", 0)
            self.usage = Usage(
                prompt_tokens=usage.get("inputTokens", 0) + cache_read + cache_write,
                completion_tokens=usage.get("outputTokens", 0),
                cached_input_tokens=cache_read,
                cache_write_tokens=cache_write,
            )
        return []

    def finish(self) -> list[ModelEvent]:
        if self.stop_reason is None:
            raise InvalidModelResponse("The Bedrock stream ended without messageStop.")
        usage: list[ModelEvent] = [self.usage] if self.usage is not None else []
        return [*usage, Finish(_FINISH_REASON_MAP.get(self.stop_reason, "end_turn"))]


class _Worker:
    """Runs `converse_stream` and its iteration on a thread, handing events to the loop."""

    def __init__(self, client: Any, params: dict[str, Any]) -> None:
        self._client = client
        self._params = params
        self._loop = asyncio.get_running_loop()
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self._stream: Any = None
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="bedrock-converse-stream", daemon=True)

    def _put(self, kind: str, value: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is gone: nobody is listening
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, value))

    def _run(self) -> None:
        try:
            response = self._client.converse_stream(**self._params)
            with self._lock:
                self._stream = response["stream"]
                if self._stop.is_set():
                    return
            events: Iterator[dict[str, Any]] = iter(self._stream)
            for event in events:
                if self._stop.is_set():
                    return
                self._put("event", event)
            with self._lock:
                # Read to the end: the connection went back to the pool and must not be shut down.
                self._stream = None
            self._put("end", None)
        except Exception as exc:
            if not self._stop.is_set():
                self._put("error", exc)
        finally:
            self.close()

    def close(self) -> None:
        """Stop reading; a body not read to its end is shut down, which ends a read the thread is blocked in."""
        with self._lock:
            self._stop.set()
            stream, self._stream = self._stream, None
        if stream is not None:
            # Closing a socket does not wake a thread blocked reading it; shutting it down does
            # (urllib3 >= 2.3 `HTTPResponse.shutdown`, under botocore's EventStream).
            shutdown = getattr(getattr(stream, "_raw_stream", None), "shutdown", None)
            with contextlib.suppress(Exception):
                if shutdown is not None:
                    shutdown()
                stream.close()

    async def events(self) -> AsyncGenerator[dict[str, Any], None]:
        self._thread.start()
        try:
            while True:
                kind, value = await self._queue.get()
                if kind == "end":
                    return
                if kind == "error":
                    raise value
                yield value
        finally:
            self.close()


class BedrockModel(ProviderModel[dict[str, Any]]):
    """A Bedrock model (any that supports Converse) behind the `llm` port."""

    provider = "bedrock"

    def __init__(self, name: str, client: Any, *, retry: RetryPolicy | None = None) -> None:
        """Wrap a boto3 client.

        Args:
            name: the model id or inference profile (`anthropic.claude-3-5-sonnet-20240620-v1:0`).
            client: a boto3 `bedrock-runtime` client, best built with botocore retries off.
            retry: the retry policy; `RetryPolicy()` by default.
        """
        super().__init__(name, retry=retry)
        self._client = client

    def _raw_events(self, request: ModelRequest) -> AsyncGenerator[dict[str, Any], None]:
        return _Worker(self._client, request_params(request)).events()

    def _new_state(self) -> BedrockStreamState:
        return BedrockStreamState()

    def _map_error(self, exc: Exception) -> ModelError | None:
        return map_error(exc)
