"""The models `GET /v1/models/` lists: the handles this server can run, as Letta's `Model` describes them.

Providers are not asked for their model lists (that would be a network call, with the server's
keys, on every listing, and an OpenAI-compatible server's list says nothing of tool calling).
Instead each configured provider contributes a short catalog of its current tool-calling models,
`CHORUS_MODELS` adds any handle an operator wants listed (an Ollama model, a Bedrock inference
profile), and the default model and the offline scripted model are always there. A handle is
listed only if `resolve_model` accepts it, so every listed handle is one `agents.create` accepts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from chorus.errors import ModelNotAvailable
from chorus.llm.resolve import check_handle, split_handle

ProviderType = Literal["letta", "openai", "anthropic", "bedrock"]


@dataclass(frozen=True, slots=True)
class ModelEntry:
    handle: str
    provider: str
    name: str
    provider_type: ProviderType
    endpoint_type: Literal["openai", "anthropic", "bedrock"]
    context_window: int


_CONTEXT = {"openai": 128_000, "anthropic": 200_000, "bedrock": 200_000, "scripted": 128_000}
"""Context window of a model the catalog does not know (a handle from `CHORUS_MODELS`)."""

CATALOG: dict[str, tuple[tuple[str, int], ...]] = {
    "openai": (
        ("gpt-4.1", 1_047_576),
        ("gpt-4.1-mini", 1_047_576),
        ("gpt-4o", 128_000),
        ("gpt-4o-mini", 128_000),
        ("o4-mini", 200_000),
    ),
    "anthropic": (
        ("claude-sonnet-4-5", 200_000),
        ("claude-haiku-4-5", 200_000),
        ("claude-opus-4-1", 200_000),
    ),
    "bedrock": (
        ("anthropic.claude-3-5-haiku-20241022-v1:0", 200_000),
        ("anthropic.claude-3-5-sonnet-20241022-v2:0", 200_000),
        ("amazon.nova-pro-v1:0", 300_000),
    ),
}
"""Well-known tool-calling models of each provider, listed when the provider is configured."""

_TYPES: dict[str, tuple[ProviderType, Literal["openai", "anthropic", "bedrock"]]] = {
    "scripted": ("letta", "openai"),
    "openai": ("openai", "openai"),
    "anthropic": ("anthropic", "anthropic"),
    "bedrock": ("bedrock", "bedrock"),
}
"""Letta's `provider_type` and `model_endpoint_type` of each provider. The scripted model is Chorus's own
(Letta lists its own hosted model as provider `letta`, endpoint type `openai`, as here)."""


def available_models(default_model: str | None, extra: str, *, compatible_openai: bool) -> list[ModelEntry]:
    """Every handle that resolves here, in listing order: scripted, default, `extra`, then the catalogs.

    `compatible_openai` (an `OPENAI_BASE_URL` server) leaves the OpenAI catalog out: such a server
    serves its own models, which the operator names in `CHORUS_MODELS`."""
    known = dict(CATALOG)
    if compatible_openai:
        known.pop("openai", None)
    handles = ["scripted/default"]
    if default_model:
        handles.append(default_model)
    handles += [h.strip() for h in extra.split(",") if h.strip()]
    handles += [f"{provider}/{name}" for provider, models in known.items() for name, _ in models]
    windows = {f"{p}/{name}": size for p, models in CATALOG.items() for name, size in models}
    out: list[ModelEntry] = []
    for handle in dict.fromkeys(handles):
        try:
            check_handle(handle)
            provider, name = split_handle(handle)
        except ModelNotAvailable:
            continue
        provider_type, endpoint_type = _TYPES[provider]
        size = windows.get(handle, _CONTEXT[provider])
        out.append(ModelEntry(handle, provider, name, provider_type, endpoint_type, size))
    return out
