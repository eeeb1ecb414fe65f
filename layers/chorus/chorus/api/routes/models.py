"""`/v1/models`: the model handles agents may be created with (Letta's `client.models.list()`).

What is listed, and why no provider is asked, is `chorus.llm.catalog`'s to say; the filters are
Letta's (`provider_name`, `provider_type`, `provider_category`: every model here is `base`).
"""

from __future__ import annotations

import os
from typing import Annotated

from fastapi import APIRouter, Query

from chorus.api.deps import ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.llm.catalog import ModelEntry, available_models
from chorus.schemas.llm_models import ModelState

router = APIRouter(route_class=JsonRoute, prefix="/v1/models", tags=["models"])


def _state(entry: ModelEntry) -> ModelState:
    return ModelState(
        handle=entry.handle,
        name=entry.name,
        display_name=entry.name,
        model=entry.name,
        provider_name=entry.provider,
        provider_type=entry.provider_type,
        model_endpoint_type=entry.endpoint_type,
        context_window=entry.context_window,
        max_context_window=entry.context_window,
    )


@router.get("", response_model=list[ModelState])
async def list_models(
    svc: ServicesDep,
    _tenant: TenantDep,
    provider_name: Annotated[str | None, Query(max_length=100)] = None,
    provider_type: Annotated[str | None, Query(max_length=100)] = None,
    provider_category: Annotated[list[str] | None, Query(max_length=10)] = None,
) -> list[ModelState]:
    """Every handle `agents.create` accepts here; a filter that matches nothing gives `[]`."""
    entries = available_models(
        svc.settings.default_model, svc.settings.models, compatible_openai=bool(os.environ.get("OPENAI_BASE_URL"))
    )
    return [
        _state(e)
        for e in entries
        if (provider_name is None or e.provider == provider_name)
        and (provider_type is None or e.provider_type == provider_type)
        and (not provider_category or "base" in provider_category)
    ]
