"""Letta's `Model` (the items of `GET /v1/models/`), with the fields the SDK requires and the ones it reads."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ModelState(BaseModel):
    model_config = ConfigDict(extra="forbid")

    handle: str
    name: str
    display_name: str
    model: str
    """Deprecated in Letta (`name`), still required by its SDK."""
    provider_name: str
    provider_type: Literal["letta", "openai", "anthropic", "bedrock"]
    provider_category: Literal["base"] = "base"
    model_endpoint_type: Literal["openai", "anthropic", "bedrock"]
    model_type: Literal["llm"] = "llm"
    context_window: int
    max_context_window: int
