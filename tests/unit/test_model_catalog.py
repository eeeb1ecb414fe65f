"""What `GET /v1/models/` lists: only handles that resolve here, from the configured providers."""

from __future__ import annotations

import pytest

from chorus.llm.catalog import CATALOG, available_models
from chorus.llm.resolve import check_handle


@pytest.fixture(autouse=True)
def no_providers(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY", "AWS_REGION", "AWS_DEFAULT_REGION"):
        monkeypatch.delenv(name, raising=False)


def test_without_providers_only_the_scripted_model_is_listed() -> None:
    listed = available_models(None, "openai/gpt-4o, bedrock/amazon.nova-pro-v1:0", compatible_openai=False)
    assert [m.handle for m in listed] == ["scripted/default"]
    assert (listed[0].provider_type, listed[0].endpoint_type) == ("letta", "openai")


def test_a_configured_provider_lists_its_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-test")
    listed = available_models("anthropic/claude-sonnet-4-5", "", compatible_openai=False)
    handles = [m.handle for m in listed]
    assert handles == ["scripted/default", *(f"anthropic/{name}" for name, _ in CATALOG["anthropic"])]
    for model in listed:
        check_handle(model.handle)
    assert {m.provider_type for m in listed[1:]} == {"anthropic"}


def test_an_openai_compatible_server_lists_what_the_operator_names(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    listed = available_models(None, "openai/llama3.2,nonsense,anthropic/claude-haiku-4-5", compatible_openai=True)
    assert [(m.handle, m.context_window) for m in listed] == [
        ("scripted/default", 128_000),
        ("openai/llama3.2", 128_000),
    ]
