"""`bedrock/…` against a local server speaking ConverseStream in the AWS event-stream binary framing."""

from __future__ import annotations

import threading

import pytest

from chorus.errors import InvalidModelResponse, ModelAuthError, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.base import (
    Finish,
    ModelMessage,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCallRequest,
    Usage,
)
from chorus.llm.bedrock import BedrockModel
from chorus.llm.retry import NO_RETRY, RetryPolicy
from support.bedrock_stream import (
    EVENTSTREAM,
    MODEL_ID,
    client_for,
    start,
    stop,
    stream,
    text_block,
    text_stream,
)
from support.provider_fakes import (
    WEATHER,
    FakeServer,
    Pauses,
    Reply,
    aws_error,
    bedrock_event,
    bedrock_exception,
    collect,
    collect_until_error,
    request,
    two_tool_calls,
)

USAGE = Usage(prompt_tokens=40, completion_tokens=12, cached_input_tokens=8, cache_write_tokens=2)


@pytest.fixture
def model(fake: FakeServer, retry: RetryPolicy) -> BedrockModel:
    return BedrockModel(MODEL_ID, client_for(fake), retry=retry)


async def test_text_reply(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(text_stream("Hel", "lo"))

    events = await collect(model, request(model=MODEL_ID))

    assert events == [TextDelta("Hel"), TextDelta("lo"), USAGE, Finish("end_turn")]
    sent = fake.requests[0]
    assert sent.path == f"/model/{MODEL_ID}/converse-stream"
    assert sent.headers["authorization"].startswith("AWS4-HMAC-SHA256")
    assert sent.json == {
        "messages": [{"role": "user", "content": [{"text": "bob: hello"}]}],
        "system": [{"text": "You are alice."}],
    }


async def test_tool_use_with_input_split_over_deltas(fake: FakeServer, model: BedrockModel) -> None:
    def tool_start(index: int, tool_id: str, name: str) -> bytes:
        body = {"contentBlockIndex": index, "start": {"toolUse": {"toolUseId": tool_id, "name": name}}}
        return bedrock_event("contentBlockStart", body)

    def tool_input(index: int, piece: str) -> bytes:
        return bedrock_event("contentBlockDelta", {"contentBlockIndex": index, "delta": {"toolUse": {"input": piece}}})

    fake.reply(
        stream(
            start(),
            *text_block(0, "Checking."),
            tool_start(1, "tooluse_a", "get_weather"),
            tool_input(1, '{"city": '),
            tool_input(1, '"Paris"}'),
            bedrock_event("contentBlockStop", {"contentBlockIndex": 1}),
            tool_start(2, "tooluse_b", "get_time"),
            tool_input(2, "{}"),
            bedrock_event("contentBlockStop", {"contentBlockIndex": 2}),
            *stop("tool_use"),
        )
    )

    events = await collect(model, request())

    assert events == [*two_tool_calls("tooluse_a", "tooluse_b"), USAGE, Finish("tool_use")]


async def test_reasoning_content_with_signature(fake: FakeServer, model: BedrockModel) -> None:
    def reasoning(**content: str) -> bytes:
        return bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"reasoningContent": content}})

    fake.reply(
        stream(
            start(),
            reasoning(text="Let me"),
            reasoning(text=" think."),
            reasoning(signature="EqQBCgIYAhIM"),
            bedrock_event("contentBlockStop", {"contentBlockIndex": 0}),
            *text_block(1, "Answer."),
            *stop("max_tokens"),
        )
    )

    events = await collect(model, request(enable_reasoning=True, max_tokens=4096))

    assert events == [
        ReasoningDelta("Let me"),
        ReasoningDelta(" think."),
        ReasoningDelta("", signature="EqQBCgIYAhIM"),
        TextDelta("Answer."),
        USAGE,
        Finish("max_tokens"),
    ]
    body = fake.requests[0].json
    assert body["additionalModelRequestFields"] == {"thinking": {"type": "enabled", "budget_tokens": 2048}}
    assert body["inferenceConfig"] == {"maxTokens": 4096}


async def test_request_maps_tool_history_and_tool_config(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(text_stream("ok"))
    req = request(
        ModelMessage("user", "bob: weather?"),
        ModelMessage("assistant", "", tool_calls=(ToolCallRequest("tooluse_a", "get_weather", '{"city": "Paris"}'),)),
        ModelMessage("tool", "sunny", tool_call_id="tooluse_a"),
        ModelMessage("user", "carol: thanks"),
        tools=(WEATHER,),
    )

    await collect(model, req)

    body = fake.requests[0].json
    assert body["messages"] == [
        {"role": "user", "content": [{"text": "bob: weather?"}]},
        {
            "role": "assistant",
            "content": [{"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}}],
        },
        {
            "role": "user",
            "content": [
                {"toolResult": {"toolUseId": "tooluse_a", "content": [{"text": "sunny"}]}},
                {"text": "carol: thanks"},
            ],
        },
    ]
    assert body["toolConfig"] == {
        "tools": [
            {
                "toolSpec": {
                    "name": "get_weather",
                    "description": "Weather of a city.",
                    "inputSchema": {"json": WEATHER.parameters},
                }
            }
        ]
    }


@pytest.mark.parametrize(
    ("status", "code", "error", "retryable"),
    [
        (429, "ThrottlingException", ModelRateLimited, True),
        (429, "ServiceQuotaExceededException", ModelRateLimited, True),
        (408, "ModelTimeoutException", ModelTimeout, True),
        (500, "InternalServerException", ModelError, True),
        (503, "ServiceUnavailableException", ModelError, True),
        (403, "AccessDeniedException", ModelAuthError, False),
        (403, "UnrecognizedClientException", ModelAuthError, False),
        (400, "ValidationException", ModelError, False),
        (404, "ResourceNotFoundException", ModelError, False),
    ],
)
async def test_http_errors_map_to_model_errors(
    fake: FakeServer, status: int, code: str, error: type[ModelError], retryable: bool
) -> None:
    fake.reply(aws_error(status, code, "nope"))

    seen, exc = await collect_until_error(BedrockModel(MODEL_ID, client_for(fake), retry=NO_RETRY), request())

    assert seen == []
    assert type(exc) is error
    assert isinstance(exc, ModelError)
    assert exc.retryable is retryable
    assert code in exc.detail and "nope" in exc.detail


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("throttlingException", ModelRateLimited),
        ("modelStreamErrorException", ModelError),
        ("internalServerException", ModelError),
        ("validationException", ModelError),
    ],
)
async def test_exception_event_after_the_first_token_is_not_retried(
    fake: FakeServer, model: BedrockModel, kind: str, error: type[ModelError]
) -> None:
    fake.reply(
        stream(start(), *text_block(0, "Hel")[:1], bedrock_exception(kind, "stream broke")),
        text_stream("never"),
    )

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hel")]
    assert type(exc) is error
    assert "stream broke" in str(exc)
    assert len(fake.requests) == 1


async def test_throttled_twice_then_success_is_one_clean_stream(
    fake: FakeServer, model: BedrockModel, pauses: Pauses
) -> None:
    fake.reply(aws_error(429, "ThrottlingException"), aws_error(429, "ThrottlingException"), text_stream("Hi"))

    events = await collect(model, request())

    assert events == [TextDelta("Hi"), USAGE, Finish("end_turn")]
    assert len(fake.requests) == 3
    assert len(pauses.taken) == 2


async def test_exception_event_before_any_token_is_retried(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(stream(start(), bedrock_exception("throttlingException", "slow down")), text_stream("Hi"))

    events = await collect(model, request())

    assert events[0] == TextDelta("Hi")
    assert len(fake.requests) == 2


async def test_corrupt_frame_is_an_invalid_response(fake: FakeServer, model: BedrockModel) -> None:
    good = bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "Hi"}})
    corrupt = bytearray(bedrock_event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": "x"}}))
    corrupt[-1] ^= 0xFF
    fake.reply(stream(start(), good, bytes(corrupt)))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, InvalidModelResponse)


async def test_stream_cut_before_message_stop_is_an_invalid_response(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(stream(start(), *text_block(0, "Hi")))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, InvalidModelResponse)


async def test_read_timeout_mid_stream(fake: FakeServer) -> None:
    fake.reply(Reply(chunks=[start(), *text_block(0, "Hi")[:1]], content_type=EVENTSTREAM, hang_after_chunks=True))

    seen, exc = await collect_until_error(BedrockModel(MODEL_ID, client_for(fake, 0.3), retry=NO_RETRY), request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, ModelTimeout)


async def test_consumer_stopping_early_ends_the_worker_thread(fake: FakeServer) -> None:
    """The worker is blocked reading a silent stream; closing must wake it, not the (long) read timeout."""
    fake.reply(Reply(chunks=[start(), *text_block(0, "Hi")[:1]], content_type=EVENTSTREAM, hang_after_chunks=True))
    model = BedrockModel(MODEL_ID, client_for(fake, read_timeout=3600), retry=NO_RETRY)

    events = model.stream(request())
    assert await anext(events) == TextDelta("Hi")
    await events.aclose()  # type: ignore[attr-defined]

    workers = [t for t in threading.enumerate() if t.name == "bedrock-converse-stream"]
    for worker in workers:
        worker.join(timeout=60)
    assert not any(t.is_alive() for t in workers)


async def test_connection_is_reused_after_a_complete_stream(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(text_stream("one"), text_stream("two"))

    assert (await collect(model, request()))[0] == TextDelta("one")
    assert (await collect(model, request()))[0] == TextDelta("two")
    assert fake.requests[0].client_port == fake.requests[1].client_port


async def test_signed_reasoning_goes_back_before_tool_use(fake: FakeServer, model: BedrockModel) -> None:
    fake.reply(text_stream("ok"))
    call = ToolCallRequest("tooluse_a", "get_weather", '{"city": "Paris"}')
    req = request(
        ModelMessage("user", "weather?"),
        ModelMessage("assistant", "", tool_calls=(call,), reasoning=(Reasoning("need data", "sig-1"),)),
        ModelMessage("tool", "sunny", tool_call_id="tooluse_a"),
        tools=(WEATHER,),
    )
    await collect(model, req)
    assert fake.requests[0].json["messages"][1]["content"] == [
        {"reasoningContent": {"reasoningText": {"text": "need data", "signature": "sig-1"}}},
        {"toolUse": {"toolUseId": "tooluse_a", "name": "get_weather", "input": {"city": "Paris"}}},
    ]
