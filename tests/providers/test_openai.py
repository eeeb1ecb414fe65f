"""`openai/…` against a local server speaking Chat Completions streaming byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import openai
import pytest

from chorus.api.errors import status_of
from chorus.errors import InvalidModelResponse, ModelAuthError, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.base import (
    Finish,
    ModelMessage,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallRequest,
    Usage,
)
from chorus.llm.openai import OpenAIModel, shared_clients
from chorus.llm.retry import NO_RETRY, RetryPolicy
from support import create_group, payloads, stream
from support.provider_fakes import (
    WEATHER,
    FakeServer,
    Pauses,
    Reply,
    chat_tokens,
    collect,
    collect_until_error,
    json_reply,
    request,
    sse,
)


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **extra: Any) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "test-model",
        "system_fingerprint": "fp_1",
        "choices": choices,
        "usage": None,
        **extra,
    }
    return sse(body)


USAGE = chunk(
    None,
    usage={
        "prompt_tokens": 31,
        "completion_tokens": 7,
        "total_tokens": 38,
        "prompt_tokens_details": {"cached_tokens": 16, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 2, "audio_tokens": 0},
    },
)
DONE = sse("[DONE]")


def text_stream(*pieces: str, finish: str = "stop") -> Reply:
    chunks = [chunk({"role": "assistant", "content": "", "refusal": None})]
    chunks += [chunk({"content": p}) for p in pieces]
    chunks += [chunk({}, finish), USAGE, DONE]
    return Reply(chunks=chunks)


@pytest.fixture
async def sdk(fake: FakeServer) -> AsyncIterator[openai.AsyncOpenAI]:
    c = openai.AsyncOpenAI(api_key="sk-test", base_url=f"{fake.url}/v1", max_retries=0, timeout=5)
    yield c
    await c.close()


@pytest.fixture
def model(sdk: openai.AsyncOpenAI, retry: RetryPolicy) -> OpenAIModel:
    return OpenAIModel("test-model", sdk, retry=retry)


async def test_text_reply_streams_deltas_then_usage_then_finish(fake: FakeServer, model: OpenAIModel) -> None:
    fake.reply(text_stream("Hel", "lo", " there"))

    events = await collect(model, request())

    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        TextDelta(" there"),
        Usage(prompt_tokens=31, completion_tokens=7, cached_input_tokens=16, reasoning_tokens=2),
        Finish("end_turn"),
    ]
    sent = fake.requests[0]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test"
    assert sent.json == {
        "model": "test-model",
        "messages": [
            {"role": "system", "content": "You are alice."},
            {"role": "user", "content": "bob: hello"},
        ],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


async def test_tool_calls_stream_with_arguments_split_over_deltas(fake: FakeServer, model: OpenAIModel) -> None:
    def call(index: int, **fields: Any) -> bytes:
        return chunk({"tool_calls": [{"index": index, **fields}]})

    fake.reply(
        Reply(
            chunks=[
                chunk({"role": "assistant", "content": None}),
                call(0, id="call_a", type="function", function={"name": "get_weather", "arguments": ""}),
                call(0, function={"arguments": '{"ci'}),
                call(0, function={"arguments": 'ty": "Par'}),
                call(0, function={"arguments": 'is"}'}),
                call(1, id="call_b", type="function", function={"name": "get_time", "arguments": "{}"}),
                chunk({}, "tool_calls"),
                USAGE,
                DONE,
            ]
        )
    )

    events = await collect(model, request())

    assert events[:-2] == [
        ToolCallDelta(0, "call_a", "get_weather", ""),
        ToolCallDelta(0, None, None, '{"ci'),
        ToolCallDelta(0, None, None, 'ty": "Par'),
        ToolCallDelta(0, None, None, 'is"}'),
        ToolCallDelta(1, "call_b", "get_time", "{}"),
    ]
    assert events[-1] == Finish("tool_use")


async def test_request_maps_tool_history_tools_and_max_tokens(fake: FakeServer, model: OpenAIModel) -> None:
    fake.reply(text_stream("ok"))
    req = request(
        ModelMessage("user", "bob: weather?"),
        ModelMessage("assistant", "", tool_calls=(ToolCallRequest("call_a", "get_weather", '{"city": "Paris"}'),)),
        ModelMessage("tool", "sunny", tool_call_id="call_a"),
        ModelMessage("system", "carol joined"),
        tools=(WEATHER,),
        max_tokens=256,
    )

    await collect(model, req)

    body = fake.requests[0].json
    assert body["messages"][1:] == [
        {"role": "user", "content": "bob: weather?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_a",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "content": "sunny"},
        {"role": "system", "content": "carol joined"},
    ]
    assert body["tools"] == [
        {
            "type": "function",
            "function": {"name": "get_weather", "description": "Weather of a city.", "parameters": WEATHER.parameters},
        }
    ]
    assert body["max_completion_tokens"] == 256


async def test_compatible_server_gets_max_tokens_and_streams_reasoning_content(
    fake: FakeServer, sdk: openai.AsyncOpenAI
) -> None:
    model = OpenAIModel("qwen3", sdk, compatible=True, retry=NO_RETRY)
    fake.reply(
        Reply(
            chunks=[
                chunk({"role": "assistant", "reasoning_content": "Think"}),
                chunk({"reasoning_content": "ing."}),
                chunk({"content": "Answer"}),
                chunk({}, "length"),
                DONE,
            ]
        )
    )

    events = await collect(model, request(max_tokens=64))

    assert events == [ReasoningDelta("Think"), ReasoningDelta("ing."), TextDelta("Answer"), Finish("max_tokens")]
    assert fake.requests[0].json["max_tokens"] == 64


async def test_usage_repeated_on_every_chunk_counts_once(fake: FakeServer, model: OpenAIModel) -> None:
    def with_usage(delta: dict[str, Any], completion: int, finish: str | None = None) -> bytes:
        usage = {"prompt_tokens": 10, "completion_tokens": completion, "total_tokens": 10 + completion}
        return chunk(delta, finish, usage=usage)

    fake.reply(
        Reply(chunks=[with_usage({"content": "a"}, 1), with_usage({"content": "b"}, 2), with_usage({}, 2, "stop")])
    )

    events = await collect(model, request())

    assert events == [TextDelta("a"), TextDelta("b"), Usage(prompt_tokens=10, completion_tokens=2), Finish("end_turn")]


async def test_tool_calls_without_an_index_are_numbered_by_position(fake: FakeServer, model: OpenAIModel) -> None:
    call = {"id": "call_x", "type": "function", "function": {"name": "get_time", "arguments": "{}"}}
    fake.reply(Reply(chunks=[chunk({"tool_calls": [call]}), chunk({}, "tool_calls"), DONE]))

    events = await collect(model, request())

    assert events == [ToolCallDelta(0, "call_x", "get_time", "{}"), Finish("tool_use")]


@pytest.mark.parametrize(
    ("status", "error", "retryable"),
    [
        (429, ModelRateLimited, True),
        (500, ModelError, True),
        (503, ModelError, True),
        (504, ModelTimeout, True),
        (401, ModelAuthError, False),
        (403, ModelAuthError, False),
        (400, ModelError, False),
        (404, ModelError, False),
    ],
)
async def test_http_errors_map_to_model_errors(
    fake: FakeServer, sdk: openai.AsyncOpenAI, status: int, error: type[ModelError], retryable: bool
) -> None:
    fake.reply(json_reply(status, {"error": {"message": "nope", "type": "some_error", "code": None}}))

    seen, exc = await collect_until_error(OpenAIModel("m", sdk, retry=NO_RETRY), request())

    assert seen == []
    assert type(exc) is error
    assert isinstance(exc, ModelError)
    assert exc.retryable is retryable
    assert f"error {status}" in exc.detail and "nope" in exc.detail


async def test_rate_limit_carries_retry_after(fake: FakeServer, sdk: openai.AsyncOpenAI) -> None:
    fake.reply(json_reply(429, {"error": {"message": "slow down"}}, {"retry-after": "7"}))

    _, exc = await collect_until_error(OpenAIModel("m", sdk, retry=NO_RETRY), request())

    assert isinstance(exc, ModelRateLimited)
    assert exc.retry_after_s == 7.0
    assert exc.stop_reason == "llm_api_error"


async def test_rate_limited_twice_then_success_is_one_clean_stream(
    fake: FakeServer, model: OpenAIModel, pauses: Pauses
) -> None:
    limited = json_reply(429, {"error": {"message": "slow down"}}, {"retry-after": "2"})
    fake.reply(limited, limited, text_stream("Hi"))

    events = await collect(model, request())

    assert events == [TextDelta("Hi"), events[1], Finish("end_turn")]
    assert len(fake.requests) == 3
    assert pauses.taken == [2.0, 2.0]


async def test_retries_are_bounded(fake: FakeServer, model: OpenAIModel, pauses: Pauses) -> None:
    fake.reply(*[json_reply(503, {"error": {"message": "busy"}}) for _ in range(5)])

    _, exc = await collect_until_error(model, request())

    assert isinstance(exc, ModelError) and exc.retryable
    assert len(fake.requests) == 3
    assert len(pauses.taken) == 2


async def test_error_after_the_first_token_is_not_retried(fake: FakeServer, model: OpenAIModel) -> None:
    rate_limited = sse({"error": {"message": "Rate limit reached", "type": "rate_limit_exceeded", "code": None}})
    fake.reply(Reply(chunks=[chunk({"role": "assistant", "content": "Hel"}), rate_limited]), text_stream("never"))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hel")]
    assert isinstance(exc, ModelRateLimited)
    assert len(fake.requests) == 1


async def test_malformed_json_is_an_invalid_response(fake: FakeServer, model: OpenAIModel) -> None:
    fake.reply(Reply(chunks=[chunk({"content": "Hi"}), b"data: {not json\n\n"]))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, InvalidModelResponse)
    assert exc.stop_reason == "invalid_llm_response"


async def test_stream_cut_before_a_finish_reason_is_an_invalid_response(fake: FakeServer, model: OpenAIModel) -> None:
    fake.reply(Reply(chunks=[chunk({"content": "Hi"})]))

    seen, exc = await collect_until_error(model, request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, InvalidModelResponse)


async def test_timeout_before_any_byte(fake: FakeServer) -> None:
    fake.reply(Reply(hang=True))
    timing_out = openai.AsyncOpenAI(api_key="k", base_url=f"{fake.url}/v1", max_retries=0, timeout=0.2)

    seen, exc = await collect_until_error(OpenAIModel("m", timing_out, retry=NO_RETRY), request())

    assert seen == []
    assert isinstance(exc, ModelTimeout)
    assert status_of(exc) == 504
    await timing_out.close()


async def test_timeout_mid_stream(fake: FakeServer) -> None:
    fake.reply(Reply(chunks=[chunk({"content": "Hi"})], hang_after_chunks=True))
    timing_out = openai.AsyncOpenAI(api_key="k", base_url=f"{fake.url}/v1", max_retries=0, timeout=0.2)

    seen, exc = await collect_until_error(OpenAIModel("m", timing_out, retry=NO_RETRY), request())

    assert seen == [TextDelta("Hi")]
    assert isinstance(exc, ModelTimeout)
    await timing_out.close()


async def test_connection_refused_is_a_transient_error() -> None:
    from chorus.devserver import free_port

    dead = openai.AsyncOpenAI(api_key="k", base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)

    _, exc = await collect_until_error(OpenAIModel("m", dead, retry=NO_RETRY), request())

    assert isinstance(exc, ModelError) and exc.retryable
    await dead.close()


async def test_consumer_stopping_early_closes_the_stream(fake: FakeServer, model: OpenAIModel) -> None:
    fake.reply(text_stream("a", "b", "c"), text_stream("next"))

    stream = model.stream(request())
    async for event in stream:
        assert event == TextDelta("a")
        break
    await stream.aclose()  # type: ignore[attr-defined]

    assert await collect(model, request()) == [TextDelta("next"), Usage(31, 7, 16, 0, 2), Finish("end_turn")]


@pytest.fixture
def openai_env(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Agents on `openai/…` reach the fake through `OPENAI_BASE_URL`, as they would Ollama or vLLM."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", f"{fake.url}/v1")
    shared_clients.clear()
    yield
    shared_clients.clear()


async def _openai_group(client: httpx.AsyncClient) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    agents = []
    for name in ("Ada", "Brook"):
        response = await client.post(
            "/v1/agents", json={"name": name, "system": f"You are {name}.", "model": "openai/llama3.2"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["llm_config"]["model_endpoint_type"] == "openai"
        agents.append(response.json())
    return agents, await create_group(client, [a["id"] for a in agents])


@pytest.mark.usefixtures("openai_env")
async def test_group_run_streams_the_providers_text_as_agent_messages(
    client: httpx.AsyncClient, fake: FakeServer
) -> None:
    agents, group = await _openai_group(client)
    fake.reply(text_stream("Hello", " from", " Ada."), text_stream("Brook", " agrees."))

    events = payloads(await stream(client, group["id"], {"input": "hi team", "stream_tokens": True}))

    chunks = [e for e in events if e["message_type"] == "assistant_message"]
    by_agent: dict[str, str] = {}
    for c in chunks:
        by_agent[c["name"]] = by_agent.get(c["name"], "") + c["content"]
    assert by_agent == {"Ada": "Hello from Ada.", "Brook": "Brook agrees."}
    assert [c["content"] for c in chunks] == ["Hello", " from", " Ada.", "Brook", " agrees."]
    assert events[-2] == {"message_type": "stop_reason", "stop_reason": "end_turn", "seq_id": len(events) - 1}
    usage = events[-1]
    assert (usage["prompt_tokens"], usage["completion_tokens"], usage["cached_input_tokens"]) == (62, 14, 32)
    assert usage["reasoning_tokens"] == 4
    second = fake.requests[1].json
    assert second["model"] == "llama3.2"
    assert second["messages"][0]["role"] == "system" and second["messages"][0]["content"].startswith("You are Brook.")
    assert second["messages"][1:] == [
        {"role": "user", "content": "hi team"},
        {"role": "user", "content": "Ada: Hello from Ada."},
    ]
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [(m.get("name"), m["content"]) for m in history[1:]] == [
        ("Ada", "Hello from Ada."),
        ("Brook", "Brook agrees."),
    ]
    assert {m["sender_id"] for m in history[1:]} == {a["id"] for a in agents}


@pytest.mark.usefixtures("openai_env")
async def test_group_run_on_a_rate_limited_provider_fails_with_its_stop_reason(
    client: httpx.AsyncClient, fake: FakeServer
) -> None:
    _, group = await _openai_group(client)
    limited = json_reply(429, {"error": {"message": "slow down"}}, {"retry-after": "0"})
    fake.reply(limited, limited, limited)

    events = payloads(await stream(client, group["id"], {"input": "hi"}))

    assert [e["message_type"] for e in events] == ["stop_reason", "error_message"]
    assert events[0]["stop_reason"] == "llm_api_error"
    assert events[1]["error_type"] == "llm_rate_limit"
    assert len(fake.requests) == 3, "three attempts, then the run fails"


async def _windowed_pair(client: httpx.AsyncClient, window: int) -> dict[str, Any]:
    agents = []
    for name in ("Ada", "Brook"):
        body = {"name": name, "system": f"You are {name}.", "model": "openai/llama3.2", "context_window_limit": window}
        response = await client.post("/v1/agents", json=body)
        assert response.status_code == 200, response.text
        agents.append(response.json())
    return await create_group(client, [a["id"] for a in agents])


@pytest.mark.usefixtures("openai_env")
async def test_a_provider_refusing_long_requests_is_never_sent_one(client: httpx.AsyncClient, fake: FakeServer) -> None:
    """The fake refuses a request past its window as OpenAI does (400 `context_length_exceeded`). An
    agent that believes its window is larger is refused there, summarises harder and is sent a
    shorter request; with the true window, history is summarised before each request would pass it.
    Every run completes either way."""
    window = 700
    fake.context_limit = window
    fake.answer = text_stream("Noted", " and", " agreed", " with", " the", " others", " here.")
    unaware = await _windowed_pair(client, 100_000)
    for i in range(40):
        events = payloads(await stream(client, unaware["id"], {"input": f"point {i} of the plan"}))
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
    bodies = [r.json for r in fake.requests]
    refused = [i for i, body in enumerate(bodies) if chat_tokens(body) > window]
    assert refused, "past the window the provider refuses"
    for i in refused:
        summary, retry = bodies[i + 1], bodies[i + 2]
        assert summary["messages"][0]["content"].startswith("You compact"), "a summary, right after the refusal"
        assert chat_tokens(retry) <= window and "Summary of the" in retry["messages"][1]["content"]

    fake.requests.clear()
    group = await _windowed_pair(client, window)
    for i in range(40):
        events = payloads(await stream(client, group["id"], {"input": f"point {i} of the plan"}))
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
    summaries = [r for r in fake.requests if r.json["messages"][0]["content"].startswith("You compact")]
    assert summaries, "the agents' own model wrote the summaries"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"limit": 1000})).json()
    assert sum(m["message_type"] == "summary" for m in history) == len(summaries)


@pytest.mark.usefixtures("openai_env")
async def test_a_request_too_long_even_summarised_fails_after_one_retry(
    client: httpx.AsyncClient, fake: FakeServer
) -> None:
    fake.context_limit = 700
    fake.answer = text_stream("Noted.")
    body = {"name": "Ada", "system": "You are Ada. " * 200, "model": "openai/llama3.2", "context_window_limit": 100_000}
    ada = (await client.post("/v1/agents", json=body)).json()
    group = await create_group(client, [ada["id"]])
    events = payloads(await stream(client, group["id"], {"input": "hello"}))
    assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["llm_api_error"]
    assert "context_length_exceeded" in str(events) or "maximum context length" in str(events)
    assert len(fake.requests) == 2, "the request, then once more (nothing to summarise: the same one)"
