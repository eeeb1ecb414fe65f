"""`/v1/runs`: poll a run by id and read what it produced."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from chorus.api.deps import RunIdPath, ServicesDep, TenantDep
from chorus.schemas.messages import LettaMessage
from chorus.schemas.resources import RunState
from chorus.store.records import Page, RunRecord

router = APIRouter(prefix="/v1/runs", tags=["runs"])


def run_state(run: RunRecord) -> RunState:
    return RunState(**run.model_dump(exclude={"tenant_id", "usage", "expires_at"}))


@router.get("/{run_id}", response_model=RunState)
async def get_run(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> RunState:
    return run_state(await svc.store.get_run(tenant_id, run_id))


@router.get("/{run_id}/messages", response_model=list[LettaMessage])
async def list_run_messages(
    run_id: RunIdPath,
    svc: ServicesDep,
    tenant_id: TenantDep,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Literal["asc", "desc"] = "asc",
) -> JSONResponse:
    """The messages a run committed to history (its input and every finished step)."""
    await svc.store.get_run(tenant_id, run_id)
    page = Page(before=before, after=after, limit=limit, order=order)
    return JSONResponse([r.message for r in await svc.store.list_messages(tenant_id, page, run_id=run_id)])


@router.get("/{run_id}/usage")
async def get_run_usage(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Token usage of a run (Letta's shape); zeros while it is still running."""
    run = await svc.store.get_run(tenant_id, run_id)
    usage = run.usage or {}
    return {
        "completion_tokens": usage.get("completion_tokens", 0),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }
