"""A scripted HTTP server on loopback that plays provider replies byte for byte.

Each test queues `Reply`s; every request the server receives takes the next
one (so "429, 429, then a stream" is three replies) and is recorded with its
JSON body and headers; with `answer` set, a request finding the queue empty
gets that reply. With `context_limit` set, a request longer than that many
tokens (counted as Chorus counts, `chorus.tokens`) is refused as its provider
refuses it: Chat Completions with OpenAI's 400 `context_length_exceeded`,
Anthropic Messages with a 400 "prompt is too long", Bedrock ConverseStream
with a `ValidationException` "Input is too long for requested model.". The SDKs
talk to it over real sockets, exactly as to the provider: status lines,
headers, chunked SSE or AWS event-stream bodies.
"""

from __future__ import annotations

import asyncio
import binascii
import dataclasses
import json
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from chorus.devserver import free_port
from chorus.llm.base import Model, ModelEvent, ModelMessage, ModelRequest, TextDelta, ToolCallDelta, ToolSpec
from chorus.tokens import MESSAGE_OVERHEAD, REQUEST_OVERHEAD, TOOL_OVERHEAD, count_text


@dataclass
class Reply:
    status: int = 200
    chunks: list[bytes] = field(default_factory=list)
    """Body pieces, each written (and flushed) on its own."""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/event-stream"
    hang: bool = False
    """Send nothing, not even headers, until the client gives up (a timeout)."""
    hang_after_chunks: bool = False
    """Send the chunks, then keep the stream open without a byte until the client gives up."""


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    client_port: int
    """The client's port: the same for two requests means one kept-alive connection."""

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def sse(data: Any, event: str | None = None) -> bytes:
    """One SSE event, as the providers frame them."""
    text = data if isinstance(data, str) else json.dumps(data)
    return (f"event: {event}\n" if event else "").encode() + f"data: {text}\n\n".encode()


def json_reply(status: int, body: Any, headers: dict[str, str] | None = None) -> Reply:
    return Reply(status, [json.dumps(body).encode()], headers or {}, "application/json")


def _tool_tokens(name: str, description: str | None, parameters: Any) -> int:
    schema = orjson.dumps(parameters).decode()
    return TOOL_OVERHEAD + count_text(name) + count_text(description or "") + count_text(schema)


def chat_tokens(body: dict[str, Any]) -> int:
    """Tokens of a Chat Completions request body, as `chorus.tokens.count_request` counts the request it came from."""
    total = REQUEST_OVERHEAD
    for message in body.get("messages", []):
        total += MESSAGE_OVERHEAD + count_text(message.get("content") or "")
        for call in message.get("tool_calls") or []:
            function = call["function"]
            total += MESSAGE_OVERHEAD + count_text(function["name"]) + count_text(function["arguments"])
    for tool in body.get("tools") or []:
        function = tool["function"]
        total += _tool_tokens(function["name"], function.get("description"), function.get("parameters"))
    return total


def anthropic_tokens(body: dict[str, Any]) -> int:
    """Tokens of a Messages request body, about as Chorus counts the request (a merged turn's blocks
    count as the messages they came from)."""
    total = REQUEST_OVERHEAD + MESSAGE_OVERHEAD + count_text(body.get("system") or "")
    for turn in body.get("messages", []):
        content = turn["content"]
        for block in [{"type": "text", "text": content}] if isinstance(content, str) else content:
            kind = block.get("type")
            if kind == "text":
                total += MESSAGE_OVERHEAD + count_text(block["text"])
            elif kind == "tool_use":
                arguments = orjson.dumps(block["input"]).decode()
                total += MESSAGE_OVERHEAD + count_text(block["name"]) + count_text(arguments)
            elif kind == "tool_result":
                total += MESSAGE_OVERHEAD + count_text(str(block.get("content") or ""))
            elif kind == "thinking":
                total += count_text(block["thinking"])
    for tool in body.get("tools") or []:
        total += _tool_tokens(tool["name"], tool.get("description"), tool.get("input_schema"))
    return total


def converse_tokens(body: dict[str, Any]) -> int:
    """Tokens of a ConverseStream request body, about as Chorus counts the request."""
    system = "".join(part.get("text", "") for part in body.get("system") or [])
    total = REQUEST_OVERHEAD + MESSAGE_OVERHEAD + count_text(system)
    for turn in body.get("messages", []):
        for block in turn["content"]:
            if "text" in block:
                total += MESSAGE_OVERHEAD + count_text(block["text"])
            elif "toolUse" in block:
                use = block["toolUse"]
                total += MESSAGE_OVERHEAD + count_text(use["name"]) + count_text(orjson.dumps(use["input"]).decode())
            elif "toolResult" in block:
                result = "".join(part.get("text", "") for part in block["toolResult"]["content"])
                total += MESSAGE_OVERHEAD + count_text(result)
            elif "reasoningContent" in block:
                total += count_text(block["reasoningContent"]["reasoningText"]["text"])
    for tool in (body.get("toolConfig") or {}).get("tools", []):
        spec = tool["toolSpec"]
        total += _tool_tokens(spec["name"], spec.get("description"), spec["inputSchema"]["json"])
    return total


def context_length_exceeded(limit: int, tokens: int) -> Reply:
    """OpenAI's answer to a request longer than the model's context window."""
    message = (
        f"This model's maximum context length is {limit} tokens. However, your messages resulted in "
        f"{tokens} tokens. Please reduce the length of the messages."
    )
    error = {
        "message": message,
        "type": "invalid_request_error",
        "param": "messages",
        "code": "context_length_exceeded",
    }
    return json_reply(400, {"error": error})


def prompt_is_too_long(limit: int, tokens: int) -> Reply:
    """Anthropic's answer to a request longer than the model's context window (`chorus.llm.anthropic.too_long`)."""
    error = {"type": "invalid_request_error", "message": f"prompt is too long: {tokens} tokens > {limit} maximum"}
    return json_reply(400, {"type": "error", "error": error, "request_id": "req_011CTooLong"})


def aws_error(status: int, code: str, message: str = "nope") -> Reply:
    """An AWS JSON-protocol error: the code in `x-amzn-ErrorType`, the message in the body."""
    return json_reply(status, {"message": message}, {"x-amzn-ErrorType": f"{code}:http://internal.amazon.com/coral/"})


def input_is_too_long(limit: int, tokens: int) -> Reply:
    """Bedrock Converse's answer to a request longer than the model's window (`chorus.llm.bedrock.too_long`):
    the model's own words in a ValidationException, without the counts."""
    return aws_error(
        400, "ValidationException", "The model returned the following errors: Input is too long for requested model."
    )


_REFUSALS: tuple[tuple[str, Callable[[dict[str, Any]], int], Callable[[int, int], Reply]], ...] = (
    ("/chat/completions", chat_tokens, context_length_exceeded),
    ("/v1/messages", anthropic_tokens, prompt_is_too_long),
    ("/converse-stream", converse_tokens, input_is_too_long),
)
"""Per API (by the path's end): how a body is counted, and how the provider refuses one too long."""


def refusal(path: str, body: bytes, limit: int) -> Reply | None:
    """The provider's refusal of the request at `path` when it is longer than `limit` tokens, else None."""
    for suffix, count, refuse in _REFUSALS:
        if path.endswith(suffix):
            tokens = count(json.loads(body))
            return refuse(limit, tokens) if tokens > limit else None
    return None


class FakeServer:
    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[Recorded] = []
        self.answer: Reply | None = None
        """The reply of a request that finds the queue empty (none: an error 599)."""
        self.context_limit: int | None = None
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET", "POST"])])
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="fake-provider", daemon=True)

    def reply(self, *replies: Reply) -> None:
        self.replies.extend(replies)

    def reset(self) -> None:
        self.replies.clear()
        self.requests.clear()
        self.answer = None
        self.context_limit = None

    async def _handle(self, request: Request) -> Response:
        body = await request.body()
        self.requests.append(
            Recorded(
                request.method,
                request.url.path,
                dict(request.headers),
                body,
                request.client.port if request.client else 0,
            )
        )
        refused = None if self.context_limit is None else refusal(request.url.path, body, self.context_limit)
        if refused is not None:
            return _respond(refused)
        if not self.replies and self.answer is None:
            return Response(b'{"error": {"message": "no reply queued"}}', 599, media_type="application/json")
        reply = self.replies.pop(0) if self.replies else self.answer
        assert reply is not None
        if reply.hang:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            return Response(b"", 599)

        async def body_chunks() -> AsyncIterator[bytes]:
            for chunk in reply.chunks:
                yield chunk
                await asyncio.sleep(0)
            if reply.hang_after_chunks:
                await asyncio.sleep(3600)

        return StreamingResponse(body_chunks(), reply.status, reply.headers, media_type=reply.content_type)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake provider did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


def _respond(reply: Reply) -> Response:
    return Response(b"".join(reply.chunks), reply.status, reply.headers, media_type=reply.content_type)


class Pauses:
    """A `RetryPolicy.sleep` that records the pauses instead of taking them."""

    def __init__(self) -> None:
        self.taken: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.taken.append(seconds)


def request(*messages: ModelMessage, **changes: object) -> ModelRequest:
    base = ModelRequest(
        model="test-model",
        agent_id="agent-1",
        agent_name="alice",
        system="You are alice.",
        messages=messages or (ModelMessage("user", "bob: hello"),),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


WEATHER = ToolSpec("get_weather", "Weather of a city.", {"type": "object", "properties": {"city": {}}})


def two_tool_calls(first_id: str, second_id: str) -> list[ModelEvent]:
    """What every adapter yields for "Checking." then get_weather({"city": "Paris"}) and get_time({})."""
    return [
        TextDelta("Checking."),
        ToolCallDelta(0, first_id, "get_weather"),
        ToolCallDelta(0, arguments='{"city": '),
        ToolCallDelta(0, arguments='"Paris"}'),
        ToolCallDelta(1, second_id, "get_time"),
        ToolCallDelta(1, arguments="{}"),
    ]


async def collect(model: Model, req: ModelRequest) -> list[ModelEvent]:
    return [event async for event in model.stream(req)]


async def collect_until_error(model: Model, req: ModelRequest) -> tuple[list[ModelEvent], BaseException]:
    seen: list[ModelEvent] = []
    try:
        async for event in model.stream(req):
            seen.append(event)
    except Exception as exc:
        return seen, exc
    raise AssertionError(f"the stream did not fail: {seen}")


def eventstream_message(headers: dict[str, str], payload: bytes) -> bytes:
    """One `application/vnd.amazon.eventstream` message: prelude, prelude CRC, string headers, payload, CRC."""
    encoded = b""
    for name, value in headers.items():
        raw_name, raw_value = name.encode(), value.encode()
        encoded += struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", 7, len(raw_value)) + raw_value
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    prelude += struct.pack(">I", binascii.crc32(prelude))
    message = prelude + encoded + payload
    return message + struct.pack(">I", binascii.crc32(message))


def bedrock_event(kind: str, body: dict[str, Any]) -> bytes:
    """A ConverseStream event as Bedrock frames it."""
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return eventstream_message(headers, json.dumps(body).encode())


def bedrock_exception(kind: str, message: str) -> bytes:
    """An exception event inside a ConverseStream (`throttlingException`, ...)."""
    headers = {":exception-type": kind, ":content-type": "application/json", ":message-type": "exception"}
    return eventstream_message(headers, json.dumps({"message": message}).encode())
