"""Handles to providers: a provider not installed or not configured is a 400 at agent create/update."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest

from chorus.api.errors import status_of
from chorus.errors import ModelNotAvailable
from chorus.llm import anthropic as anthropic_adapter
from chorus.llm import bedrock as bedrock_adapter
from chorus.llm import openai as openai_adapter
from chorus.llm.anthropic import AnthropicModel
from chorus.llm.bedrock import BedrockModel
from chorus.llm.openai import OpenAIModel
from chorus.llm.resolve import KNOWN_PROVIDERS, resolve_model
from chorus.llm.streaming import ClientCache

PROVIDER_ENV = (
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "CHORUS_MODEL_TIMEOUT_S",
)


@pytest.fixture(autouse=True)
def no_provider_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in PROVIDER_ENV:
        monkeypatch.delenv(name, raising=False)
    yield
    openai_adapter.shared_clients.clear()
    anthropic_adapter.shared_clients.clear()
    bedrock_adapter.shared_client.cache_clear()


@pytest.mark.parametrize(
    ("handle", "names"),
    [
        ("openai/gpt-4o", ["OPENAI_API_KEY", "OPENAI_BASE_URL"]),
        ("anthropic/claude-sonnet-4-5", ["ANTHROPIC_API_KEY"]),
        ("bedrock/anthropic.claude-3-5-sonnet-20240620-v1:0", ["AWS_REGION"]),
    ],
)
def test_unconfigured_provider_says_what_to_set(handle: str, names: list[str]) -> None:
    with pytest.raises(ModelNotAvailable) as caught:
        resolve_model(handle)
    assert status_of(caught.value) == 400
    for name in names:
        assert name in caught.value.detail


def test_openai_with_a_key_talks_to_openai(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    model = resolve_model("openai/gpt-4o")
    assert isinstance(model, OpenAIModel)
    assert model.handle == "openai/gpt-4o"
    assert len(openai_adapter.shared_clients) == 1


def test_openai_base_url_needs_no_key_and_clients_are_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    first, second = resolve_model("openai/llama3.2"), resolve_model("openai/qwen3")
    assert isinstance(first, OpenAIModel) and isinstance(second, OpenAIModel)
    assert len(openai_adapter.shared_clients) == 1


def test_async_clients_are_shared_within_an_event_loop_not_across_loops() -> None:
    cache = ClientCache(lambda key: object())

    async def twice() -> tuple[object, object]:
        return cache.get("k"), cache.get("k")

    a, b = asyncio.run(twice())
    c, _ = asyncio.run(twice())
    assert a is b
    assert c is not a, "a client whose pool belongs to a closed loop is never handed out"


def test_a_closed_loops_clients_are_let_go_though_they_hold_their_loop() -> None:
    """A process that runs a loop per invocation (a Lambda handler) keeps one loop's clients, not every one's."""
    cache = ClientCache(lambda key: SimpleNamespace(pool_loop=asyncio.get_running_loop()))  # as httpx's pool does

    async def invocation() -> int:
        cache.get("k")
        return len(cache)

    assert [asyncio.run(invocation()) for _ in range(5)] == [1, 1, 1, 1, 1]


def test_anthropic_and_bedrock_when_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("CHORUS_MODEL_TIMEOUT_S", "30")
    assert isinstance(resolve_model("anthropic/claude-sonnet-4-5"), AnthropicModel)
    model = resolve_model("bedrock/amazon.nova-pro-v1:0")
    assert isinstance(model, BedrockModel)
    assert model.handle == "bedrock/amazon.nova-pro-v1:0"


def test_a_bad_timeout_setting_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("CHORUS_MODEL_TIMEOUT_S", "soon")
    with pytest.raises(ModelNotAvailable, match="CHORUS_MODEL_TIMEOUT_S"):
        resolve_model("anthropic/claude-sonnet-4-5")


@pytest.mark.parametrize(
    ("handle", "sdk", "module", "extra"),
    [
        ("openai/gpt-4o", "openai", "chorus.llm.openai", "chorus[openai]"),
        ("anthropic/claude", "anthropic", "chorus.llm.anthropic", "chorus[anthropic]"),
        ("bedrock/amazon.nova-pro-v1:0", "boto3", "chorus.llm.bedrock", "chorus[aws]"),
    ],
)
def test_missing_sdk_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, handle: str, sdk: str, module: str, extra: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.setitem(sys.modules, sdk, None)  # what `import` sees when the package is not installed
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(ModelNotAvailable, match=extra.replace("[", r"\[")):
        resolve_model(handle)


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ModelNotAvailable) as caught:
        resolve_model("mistral/large")
    assert all(p in caught.value.detail for p in KNOWN_PROVIDERS)


@pytest.mark.parametrize(
    ("handle", "meant"),
    [
        ("gpt-4o", "openai/gpt-4o"),
        ("openia/gpt-4o-mini", "openai/gpt-4o-mini"),
        ("claude-sonnet-4-5", "anthropic/claude-sonnet-4-5"),
        ("Anthropic/claude-3-haiku", "anthropic/claude-3-haiku"),
        ("us.anthropic.claude-sonnet-4-5-v1:0", "bedrock/us.anthropic.claude-sonnet-4-5-v1:0"),
        ("scriptd/demo", "scripted/demo"),
    ],
)
def test_an_unknown_handle_suggests_the_likely_provider(handle: str, meant: str) -> None:
    with pytest.raises(ModelNotAvailable) as caught:
        resolve_model(handle)
    assert f"Did you mean {meant!r}?" in caught.value.detail


def test_no_suggestion_when_nothing_is_likely() -> None:
    with pytest.raises(ModelNotAvailable) as caught:
        resolve_model("acme/llm-9")
    assert "Did you mean" not in caught.value.detail


async def test_agent_create_and_update_reject_an_unconfigured_provider(client: httpx.AsyncClient) -> None:
    created = await client.post("/v1/agents", json={"name": "a", "model": "anthropic/claude-sonnet-4-5"})
    assert created.status_code == 400
    assert "ANTHROPIC_API_KEY" in created.json()["detail"]

    agent = (await client.post("/v1/agents", json={"name": "a"})).json()
    updated = await client.patch(f"/v1/agents/{agent['id']}", json={"model": "openai/gpt-4o"})
    assert updated.status_code == 400
    assert "OPENAI_API_KEY" in updated.json()["detail"]
