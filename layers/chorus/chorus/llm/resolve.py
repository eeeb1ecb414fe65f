"""Model handles (`provider/model`) to `Model` instances.

Providers are imported lazily inside their branch, so a missing optional SDK
costs nothing until a handle names it, and then it is a clear 400 at agent
create/update (`ModelNotAvailable`), not a crash mid-run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from chorus.errors import ModelNotAvailable
from chorus.llm.base import Model
from chorus.llm.scripted import ScriptedModel, parse_script

KNOWN_PROVIDERS = ("scripted",)
"""Providers this build can run. Bedrock, OpenAI and Anthropic adapters come with issue 5."""


def split_handle(handle: str) -> tuple[str, str]:
    provider, sep, name = handle.partition("/")
    if not sep or not provider or not name:
        raise ModelNotAvailable(f"Model handle {handle!r} is not of the form 'provider/model'.")
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
    raise ModelNotAvailable(
        f"Model provider {provider!r} is not available in this build; known providers: {', '.join(KNOWN_PROVIDERS)}."
    )


def default_model_handle(configured: str | None) -> str:
    """The handle for agents created without `model`: the configured default, else the scripted model."""
    return configured or "scripted/default"
