"""`anthropic/…` against a local server speaking the Messages streaming format byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anthropic
import pytest

from chorus.errors import InvalidModelResponse, ModelAuthError, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.anthropic import AnthropicModel
from chorus.llm.base import (
    Finish,
    ModelMessage,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from chorus.llm.retry import NO_RETRY, RetryPolicy
from support.anthropic_stream import (
    block,
    error_body,
    event,
    message_end,
    message_start,
    text,
    text_stream,
)
from support.provider_fakes import (
    WEATHER,
    FakeServer,
    Pauses,
    Reply,
    collect,
    collect_until_error,
    json_reply,
    request,
    sse,
    two_tool_calls,
)

USAGE = Usage(prompt_tokens=40, completion_tokens=15, cached_input_tokens=10, cache_write_tokens=5)


@pytest.fixture
async def client(fake: FakeServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    c = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, timeout=5)
    yield c
    await c.close()


@pytest.fixture
def model(client: anthropic.AsyncAnthropic, retry: RetryPolicy) -> AnthropicModel:
    return AnthropicModel("claude-test", client, retry=retry)


async def test_text_reply(fake: FakeServer, model: AnthropicModel) -> None:
    fake.reply(text_stream("Hel", "lo"))

    events = await collect(model, request())

    assert events == [TextDelta("Hel"), TextDelta("lo"), USAGE, Finish("end_turn")]
    sent = fake.requests[0]
    assert sent.path == "/v1/messages"
    assert "sk-ant-test" in sent.headers.get("x-api-key", sent.headers.get("authorization", ""))
    assert sent.json == {
        "model": "test-model",
        "max_tokens": 8192,
        "system": "You are alice.",
        "messages": [{"role": "user", "content": [{"type": "text", "text": "bob: hello"}]}],
        "stream": True,
    }


async def test_tool_use_with_input_split_over_deltas(fake: FakeServer, model: AnthropicModel) -> None:
    def json_delta(piece: str) -> dict[str, Any]:
        return {"type": "input_json_delta", "partial_json": piece}

    fake.reply(
        Reply(
            chunks=[
                message_start(),
                *block(0, {"type": "text", "text": ""}, *text("Checking.")),
                *block(
                    1,
                    {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {}},
                    json_delta(""),
                    json_delta('{"city": '),
                    json_delta('"Paris"}'),
                ),
                *block(2, {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}}, json_delta("{}")),
                *message_end("tool_use"),
            ]
        )
    )

    events = await collect(model, request())

    assert events == [*two_tool_calls("toolu_a", "toolu_b"), USAGE, Finish("tool_use")]


async def test_thinking_blocks_become_reasoning_with_signature(fake: FakeServer, model: AnthropicModel) -> None:
    fake.reply(
        Reply(
            chunks=[
                message_start(),
                *block(
                    0,
                    {"type": "thinking", "thinking": "", "signature": ""},
                    {"type": "thinking_delta", "thinking": "Let me"},
                    {"type": "thinking_delta", "thinking": " think."},
                    {"type": "signature_delta", "signature": "EqQBCgIYAhIM"},
                ),
                *block(1, {"type": "redacted_thinking", "data": "opaque"}),
                *block(2, {"type": "text", "text": ""}, *text("Answer.")),
                *message_end("max_tokens"),
            ]
        )
    )

    events = await collect(model, request(enable_reasoning=True, max_tokens=1500))

    assert events == [
        ReasoningDelta("Let me"),
        ReasoningDelta(" think."),
        ReasoningDelta("", signature="EqQBCgIYAhIM"),
        TextDelta("Answer."),
        USAGE,
        Finish("max_tokens"),
    ]
    body = fake.requests[0].json
    assert body["thinking"] == {"type": "enabled", "budget_tokens": 1024}
    assert body["max_tokens"] == 2048


async def test_request_merges_turns_and_maps_tools(fake: FakeServer, model: AnthropicModel) -> None:
    fake.reply(text_stream("ok"))
    req = request(
        ModelMessage("user", "bob: weather?"),
        ModelMessage("user", "carol: and time?"),
        ModelMessage(
            "assistant",
            "Looking.",
            tool_calls=(
                ToolCallRequest("toolu_a", "get_weather", '{"city": "Paris"}'),
                ToolCallRequest("toolu_b", "get_time", ""),
            ),
        ),
        ModelMessage("tool", "sunny", tool_call_id="toolu_a"),
        ModelMessage("tool", "noon", tool_call_id="toolu_b"),
        ModelMessage("system", "dave joined"),
        tools=(WEATHER,),
    )

    await collect(model, req)

    body = fake.requests[0].json
    assert body["messages"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "bob: weather?"}, {"type": "text", "text": "carol: and time?"}],
        },
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Looking."},
                {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "toolu_b", "name": "get_time", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_a", "content": "sunny"},
                {"type": "tool_result", "tool_use_id": "toolu_b", "content": "noon"},
                {"type": "text", "text": "[system] dave joined"},
            ],
        },
    ]
    assert body["tools"] == [
        {"name": "get_weather", "description": "Weather of a city.", "input_schema": WEATHER.parameters}
    ]


@pytest.mark.parametrize(
    ("status", "kind", "error", "retryable"),
    [
        (429, "rate_limit_error", ModelRateLimited, True),
        (529, "overloaded_error", ModelError, True),
        (500, "api_error", ModelError, True),
        (504, "timeout_error", ModelTimeout, True),
        (401, "authentication_error", ModelAuthError, False),
        (403, "permission_error", ModelAuthError, False),
        (400, "invalid_request_error", ModelError, False),
    ],
)
async def test_http_errors_map_to_model_errors(
    fake: FakeServer, client: anthropic.AsyncAnthropic, status: int, kind: str, error: type[ModelError], retryable: bool
) -> None:
    fake.reply(json_reply(status, error_body(kind), {"retry-after": "3"} if status == 429 else {}))

    seen, exc = await collect_until_error(AnthropicModel("m", client, retry=NO_RETRY), request())

    assert seen == []
    assert type(exc) is error
    assert isinstance(exc, ModelError)
    assert exc.retryable is retryable
    assert exc.retry_after_s == (3.0 if status == 429 else None)


@pytest.mark.parametrize(
    ("kind", "error"),
    [("overloaded_error", ModelError), ("rate_limit_error", ModelRateLimited), ("api_error", ModelError)],
)
async def test_error_event_after_the_first_token_is_not_retried(
    fake: FakeServer, model: AnthropicModel, kind: str, error: type[ModelError]
) -> None:
    fake.reply(
        Reply(
            chunks=[
                message_start(),
                event("content_block_start", index=0, content_block={"type": "text", "text": ""}),
                event("content_block_delta", index=0, delta=text("Hel")[0]),
                sse(error_body(kind, "Overloaded"), event="error"),
            ]
        ),
        text_stream("never"),
    )

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hel")]
    assert type(exc) is error
    assert isinstance(exc, ModelError) and exc.stop_reason == "llm_api_error"
    assert len(fake.requests) == 1


async def test_overloaded_twice_then_success_is_one_clean_stream(
    fake: FakeServer, model: AnthropicModel, pauses: Pauses
) -> None:
    overloaded = json_reply(529, error_body("overloaded_error"))
    fake.reply(overloaded, overloaded, text_stream("Hi"))

    events = await collect(model, request())

    assert events == [TextDelta("Hi"), USAGE, Finish("end_turn")]
    assert len(fake.requests) == 3
    assert len(pauses.taken) == 2


async def test_malformed_json_is_an_invalid_response(fake: FakeServer, model: AnthropicModel) -> None:
    fake.reply(Reply(chunks=[message_start(), b"event: content_block_start\ndata: {oops\n\n"]))

    _, exc = await collect_until_error(model, request())

    assert isinstance(exc, InvalidModelResponse)


async def test_stream_cut_before_message_stop_is_an_invalid_response(fake: FakeServer, model: AnthropicModel) -> None:
    fake.reply(Reply(chunks=[message_start(), *block(0, {"type": "text", "text": ""}, *text("Hi"))]))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, InvalidModelResponse)
    assert exc.stop_reason == "invalid_llm_response"


async def test_timeout_before_any_byte(fake: FakeServer) -> None:
    fake.reply(Reply(hang=True))
    client = anthropic.AsyncAnthropic(api_key="k", base_url=fake.url, max_retries=0, timeout=0.2)

    _, exc = await collect_until_error(AnthropicModel("m", client, retry=NO_RETRY), request())

    assert isinstance(exc, ModelTimeout)
    await client.close()


async def test_signed_thinking_goes_back_before_tool_use(fake: FakeServer, model: AnthropicModel) -> None:
    """With thinking on, Anthropic rejects an assistant tool-use turn without its thinking block."""
    fake.reply(text_stream("ok"))
    call = ToolCallRequest("toolu_a", "get_weather", '{"city": "Paris"}')
    req = request(
        ModelMessage("user", "weather?"),
        ModelMessage("assistant", "", tool_calls=(call,), reasoning=(Reasoning("need data", "sig-1"),)),
        ModelMessage("tool", "sunny", tool_call_id="toolu_a"),
        ModelMessage("assistant", "Sunny.", reasoning=(Reasoning("from elsewhere", None),)),
        ModelMessage("user", "thanks"),
        tools=(WEATHER,),
    )
    await collect(model, req)
    messages = fake.requests[0].json["messages"]
    assert messages[1]["content"] == [
        {"type": "thinking", "thinking": "need data", "signature": "sig-1"},
        {"type": "tool_use", "id": "toolu_a", "name": "get_weather", "input": {"city": "Paris"}},
    ]
    assert messages[3]["content"] == [{"type": "text", "text": "Sunny."}], "unsigned reasoning is not sent"
