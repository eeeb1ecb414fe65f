"""A provider refusing a request as longer than its window, for Anthropic and Bedrock (OpenAI's is in
`test_openai.py`): the adapter recognises the refusal by the provider's own words and nothing else, and a
run through the real SDK summarises and sends once more, failing only on a second refusal."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anthropic
import httpx
import pytest

from chorus.errors import ContextTooLong, ModelError, ModelRateLimited
from chorus.llm import anthropic as anthropic_adapter
from chorus.llm import bedrock as bedrock_adapter
from chorus.llm.anthropic import AnthropicModel
from chorus.llm.bedrock import BedrockModel
from chorus.llm.retry import NO_RETRY
from support import anthropic_stream, bedrock_stream, create_group, payloads, stream
from support.provider_fakes import (
    FakeServer,
    Reply,
    anthropic_tokens,
    aws_error,
    bedrock_exception,
    collect_until_error,
    converse_tokens,
    json_reply,
    request,
)

WINDOW = 700


@dataclass(frozen=True)
class Provider:
    """What differs between the providers in a run: the handle, the bodies, the replies."""

    model: str
    answer: Callable[..., Reply]
    tokens: Callable[[dict[str, Any]], int]
    system: Callable[[dict[str, Any]], str]
    first_text: Callable[[dict[str, Any]], str]
    unrelated: Reply
    """A 400 of the same kind as the refusal that is not about length."""
    refusal_words: str


ANTHROPIC = Provider(
    model="anthropic/claude-test",
    answer=anthropic_stream.text_stream,
    tokens=anthropic_tokens,
    system=lambda body: str(body.get("system") or ""),
    first_text=lambda body: str(body["messages"][0]["content"][0]["text"]),
    unrelated=json_reply(
        400, anthropic_stream.error_body("invalid_request_error", 'messages: roles must alternate between "user"')
    ),
    refusal_words="prompt is too long",
)
BEDROCK = Provider(
    model=f"bedrock/{bedrock_stream.MODEL_ID}",
    answer=bedrock_stream.text_stream,
    tokens=converse_tokens,
    system=lambda body: "".join(part["text"] for part in body.get("system") or []),
    first_text=lambda body: str(body["messages"][0]["content"][0]["text"]),
    unrelated=aws_error(400, "ValidationException", "The maximum tokens you requested exceeds the model limit of 4096"),
    refusal_words="Input is too long for requested model",
)


@pytest.fixture(params=[ANTHROPIC, BEDROCK], ids=["anthropic", "bedrock"])
def provider(request: pytest.FixtureRequest, fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> Iterator[Provider]:
    """Agents on the provider reach the fake through the SDK's own endpoint settings."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake.url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL_BEDROCK_RUNTIME", fake.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    anthropic_adapter.shared_clients.clear()
    bedrock_adapter.shared_client.cache_clear()
    yield request.param
    anthropic_adapter.shared_clients.clear()
    bedrock_adapter.shared_client.cache_clear()


async def _group(client: httpx.AsyncClient, provider: Provider, window: int, system: str = "") -> dict[str, Any]:
    agents = []
    for name in ("Ada", "Brook"):
        body = {
            "name": name,
            "system": system or f"You are {name}.",
            "model": provider.model,
            "context_window_limit": window,
        }
        response = await client.post("/v1/agents", json=body)
        assert response.status_code == 200, response.text
        agents.append(response.json()["id"])
    return await create_group(client, agents)


def _stop_reasons(events: list[dict[str, Any]]) -> list[str]:
    return [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"]


async def test_a_refusal_is_summarised_and_sent_once_more(
    client: httpx.AsyncClient, fake: FakeServer, provider: Provider
) -> None:
    """Agents that believe their window is far larger than the provider's are refused past it; each
    refusal is followed by a summary and a shorter request that fits, and every run completes."""
    fake.context_limit = WINDOW
    fake.answer = provider.answer("Noted", " and", " agreed", " with", " the", " others", " here.")
    group = await _group(client, provider, 100_000)
    for i in range(24):
        events = payloads(await stream(client, group["id"], {"input": f"point {i} of the plan"}))
        assert _stop_reasons(events) == ["end_turn"], events

    bodies = [r.json for r in fake.requests]
    refused = [i for i, body in enumerate(bodies) if provider.tokens(body) > WINDOW]
    assert refused, "past the window the provider refuses"
    for i in refused:
        summary, retry = bodies[i + 1], bodies[i + 2]
        assert provider.system(summary).startswith("You compact"), "a summary, right after the refusal"
        assert provider.tokens(retry) <= WINDOW
        assert provider.first_text(retry).startswith("[Summary of the")
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"limit": 1000})).json()
    assert sum(m["message_type"] == "summary" for m in history) == len(refused)


async def test_a_second_refusal_fails_the_run(client: httpx.AsyncClient, fake: FakeServer, provider: Provider) -> None:
    """The system prompt alone is past the window: nothing to summarise, the same request once more, then the
    run fails with `llm_api_error` and the provider's words."""
    fake.context_limit = WINDOW
    fake.answer = provider.answer("Noted.")
    group = await _group(client, provider, 100_000, system="You are thorough. " * 200)

    events = payloads(await stream(client, group["id"], {"input": "hello"}))

    assert _stop_reasons(events) == ["llm_api_error"]
    assert provider.refusal_words in str(events)
    assert len(fake.requests) == 2, "the request, then once more"


async def test_an_unrelated_400_is_not_retried_as_too_long(
    client: httpx.AsyncClient, fake: FakeServer, provider: Provider
) -> None:
    fake.reply(provider.unrelated)
    group = await _group(client, provider, 100_000)

    events = payloads(await stream(client, group["id"], {"input": "hello"}))

    assert _stop_reasons(events) == ["llm_api_error"]
    assert len(fake.requests) == 1, "no summary, no second attempt"


@pytest.mark.parametrize(
    ("kind", "message", "error"),
    [
        ("invalid_request_error", "prompt is too long: 200251 tokens > 200000 maximum", ContextTooLong),
        (
            "invalid_request_error",
            "input length and `max_tokens` exceed context limit: 199759 + 8192 > 200000, decrease input length "
            "or `max_tokens` and try again",
            ContextTooLong,
        ),
        ("invalid_request_error", 'messages: roles must alternate between "user" and "assistant"', ModelError),
        ("invalid_request_error", "messages.1.content: the prompt is too long to quote here", ModelError),
        ("not_found_error", "prompt is too long", ModelError),
    ],
)
async def test_anthropic_refusals_by_their_words(
    fake: FakeServer, kind: str, message: str, error: type[ModelError]
) -> None:
    fake.reply(json_reply(400, {**anthropic_stream.error_body(kind, message), "request_id": "req_1"}))
    client = anthropic.AsyncAnthropic(api_key="sk-ant-test", base_url=fake.url, max_retries=0, timeout=5)

    _, exc = await collect_until_error(AnthropicModel("claude-test", client, retry=NO_RETRY), request())

    assert type(exc) is error
    assert isinstance(exc, ModelError) and not exc.retryable and exc.stop_reason == "llm_api_error"
    await client.close()


MODEL_SAYS = "The model returned the following errors: "
"""How Bedrock prefixes the words of the model behind it."""


@pytest.mark.parametrize(
    ("status", "code", "message", "error"),
    [
        (400, "ValidationException", f"{MODEL_SAYS}Input is too long for requested model.", ContextTooLong),
        (400, "ValidationException", f"{MODEL_SAYS}prompt is too long: 200049 tokens > 200000 maximum", ContextTooLong),
        (
            400,
            "ValidationException",
            "Too many input tokens. Max input tokens: 8192, request input token count: 9279",
            ContextTooLong,
        ),
        (400, "ValidationException", "The maximum tokens you requested exceeds the model limit of 4096", ModelError),
        (
            400,
            "ValidationException",
            "Value at 'messages.1.member.content.1.member.toolUse.name' failed to satisfy constraint",
            ModelError,
        ),
        (429, "ThrottlingException", "Too many input tokens per minute, please wait", ModelRateLimited),
    ],
)
async def test_bedrock_refusals_by_their_words(
    fake: FakeServer, status: int, code: str, message: str, error: type[ModelError]
) -> None:
    fake.reply(aws_error(status, code, message))
    model = BedrockModel(bedrock_stream.MODEL_ID, bedrock_stream.client_for(fake), retry=NO_RETRY)

    _, exc = await collect_until_error(model, request())

    assert type(exc) is error
    assert isinstance(exc, ModelError) and message in exc.detail


async def test_bedrock_refusal_as_a_stream_event_is_too_long(fake: FakeServer) -> None:
    """The same words as a `validationException` event at the start of the stream."""
    refusal = bedrock_exception("validationException", "Input is too long for requested model.")
    fake.reply(bedrock_stream.stream(bedrock_stream.start(), refusal))
    model = BedrockModel(bedrock_stream.MODEL_ID, bedrock_stream.client_for(fake), retry=NO_RETRY)

    seen, exc = await collect_until_error(model, request())

    assert seen == []
    assert isinstance(exc, ContextTooLong)
