"""Model handles (`provider/model`) to `Model` instances.

Providers are imported lazily inside their branch, so a missing optional SDK
costs nothing until a handle names it, and then it is a clear 400 at agent
create/update (`ModelNotAvailable`), not a crash mid-run. The same goes for a
provider that is installed but not configured:

    openai/<model>     OPENAI_API_KEY, or OPENAI_BASE_URL (Ollama, vLLM: no key needed)
    anthropic/<model>  ANTHROPIC_API_KEY (ANTHROPIC_BASE_URL optional)
    bedrock/<model>    boto3 and AWS_REGION or AWS_DEFAULT_REGION (credentials: the AWS chain)

SDK clients are built once per configuration (and, for async clients, event loop), not per request.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from typing import Any

from chorus.errors import ModelNotAvailable
from chorus.llm.base import Model
from chorus.llm.scripted import ScriptedModel, parse_script

KNOWN_PROVIDERS = ("scripted", "openai", "anthropic", "bedrock")
"""Providers this build knows; each but `scripted` also needs its extra and its configuration."""

MODEL_TIMEOUT_S = 120.0
"""Default connect/read timeout of provider calls; `CHORUS_MODEL_TIMEOUT_S` overrides it."""


_FAMILIES = (
    (("gpt-", "o1", "o3", "o4", "chatgpt-"), "openai"),
    (("claude-",), "anthropic"),
    (("anthropic.", "amazon.", "meta.", "mistral.", "cohere.", "ai21.", "us.", "eu.", "apac.", "global."), "bedrock"),
)
"""Model name prefixes and the provider that serves them, for suggesting a handle."""


def suggest(handle: str) -> str | None:
    """The `provider/model` handle the user most likely meant, if one is likely."""
    provider, sep, name = handle.strip().partition("/")
    if not sep:
        name, provider = provider, ""
    if provider:
        close = difflib.get_close_matches(provider.lower(), KNOWN_PROVIDERS, n=1, cutoff=0.6)
        if close and name:
            return f"{close[0]}/{name}"
    for prefixes, family in _FAMILIES:
        if name.lower().startswith(prefixes):
            return f"{family}/{name}"
    return None


def _unknown(handle: str, problem: str) -> ModelNotAvailable:
    guess = suggest(handle)
    hint = f" Did you mean {guess!r}?" if guess and guess != handle else ""
    return ModelNotAvailable(f"{problem}{hint}")


def split_handle(handle: str) -> tuple[str, str]:
    provider, sep, name = handle.partition("/")
    if not sep or not provider or not name:
        raise _unknown(handle, f"Model handle {handle!r} is not of the form 'provider/model'.")
    return provider, name


def check_handle(handle: str, metadata: Mapping[str, Any] | None = None) -> None:
    """Raise `ModelNotAvailable` unless `handle` (with the agent's metadata) can run here."""
    resolve_model(handle, metadata)


def resolve_model(handle: str, metadata: Mapping[str, Any] | None = None) -> Model:
    provider, name = split_handle(handle)
    if provider == "scripted":
        try:
            return ScriptedModel(name, parse_script(metadata))
        except (TypeError, ValueError) as exc:
            raise ModelNotAvailable(f"Invalid scripted model settings: {exc}") from exc
    if provider == "openai":
        return _openai(name)
    if provider == "anthropic":
        return _anthropic(name)
    if provider == "bedrock":
        return _bedrock(name)
    raise _unknown(
        handle,
        f"Model provider {provider!r} is not available in this build; known providers: {', '.join(KNOWN_PROVIDERS)}.",
    )


def _env(name: str) -> str | None:
    return os.environ.get(name) or None


def _timeout_s() -> float:
    raw = _env("CHORUS_MODEL_TIMEOUT_S")
    try:
        return float(raw) if raw else MODEL_TIMEOUT_S
    except ValueError as exc:
        raise ModelNotAvailable(f"CHORUS_MODEL_TIMEOUT_S must be a number of seconds, not {raw!r}.") from exc


def _openai(name: str) -> Model:
    api_key, base_url = _env("OPENAI_API_KEY"), _env("OPENAI_BASE_URL")
    if api_key is None and base_url is None:
        raise ModelNotAvailable(
            "The 'openai' provider is not configured: set OPENAI_API_KEY, or OPENAI_BASE_URL for a compatible "
            "server such as Ollama or vLLM."
        )
    from chorus.llm.openai import OpenAIModel, shared_clients

    client = shared_clients.get(api_key, base_url, _timeout_s())
    return OpenAIModel(name, client, compatible=base_url is not None)


def _anthropic(name: str) -> Model:
    api_key = _env("ANTHROPIC_API_KEY")
    if api_key is None:
        raise ModelNotAvailable("The 'anthropic' provider is not configured: set ANTHROPIC_API_KEY.")
    from chorus.llm.anthropic import AnthropicModel, shared_clients

    return AnthropicModel(name, shared_clients.get(api_key, _env("ANTHROPIC_BASE_URL"), _timeout_s()))


def _bedrock(name: str) -> Model:
    region = _env("AWS_REGION") or _env("AWS_DEFAULT_REGION")
    if region is None:
        raise ModelNotAvailable("The 'bedrock' provider is not configured: set AWS_REGION (or AWS_DEFAULT_REGION).")
    from chorus.llm.bedrock import BedrockModel, shared_client

    return BedrockModel(name, shared_client(region, _timeout_s()))


def default_model_handle(configured: str | None) -> str:
    """The handle for agents created without `model`: the configured default, else the scripted model."""
    return configured or "scripted/default"
