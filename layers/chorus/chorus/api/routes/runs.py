"""`/v1/runs`: poll a run by id, list runs, read what a run produced, resume its stream, delete it."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from chorus.api.deps import AscendingPageDep, PageDep, RunIdPath, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import json_size, within_budget
from chorus.api.sse import sse_response
from chorus.api.views import run_state
from chorus.errors import Conflict
from chorus.limits import MAX_CURSOR
from chorus.schemas.messages import LettaMessage
from chorus.schemas.requests import ResumeRequest
from chorus.schemas.resources import RunState

router = APIRouter(route_class=JsonRoute, prefix="/v1/runs", tags=["runs"])


def _split(values: list[str] | None) -> list[str] | None:
    """Accept `statuses=a&statuses=b` and `statuses=a,b` alike."""
    if values is None:
        return None
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@router.get("", response_model=list[RunState])
async def list_runs(
    svc: ServicesDep,
    tenant_id: TenantDep,
    page: PageDep,
    agent_id: str | None = None,
    group_id: str | None = None,
    statuses: Annotated[list[str] | None, Query()] = None,
    background: bool | None = None,
    active: bool | None = None,
) -> list[RunState]:
    """Runs, newest first; `active=true` keeps created and running ones, `active=false` the finished."""
    wanted = _split(statuses)
    if active is not None:
        live = {"created", "running"}
        allowed = live if active else {"completed", "failed", "cancelled"}
        wanted = [s for s in (wanted or sorted(allowed)) if s in allowed]
    runs = await svc.store.list_runs(
        tenant_id, page, group_id=group_id, agent_id=agent_id, statuses=wanted, background=background
    )
    return [run_state(r) for r in runs]


@router.get("/{run_id}", response_model=RunState)
async def get_run(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> RunState:
    return run_state(await svc.store.get_run(tenant_id, run_id))


@router.delete("/{run_id}")
async def delete_run(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    """Delete a finished run with its event log (its messages stay in the group's history)."""
    run = await svc.store.get_run(tenant_id, run_id)
    if not run.is_terminal:
        raise Conflict(f"Run {run_id} is still {run.status}; cancel it first.", run_id=run_id)
    await svc.store.delete_run(tenant_id, run_id)
    return {"message": f"Run id={run_id} successfully deleted"}


@router.post("/{run_id}/stream", response_model=None, responses={200: {"content": {"text/event-stream": {}}}})
async def resume_run_stream(
    run_id: RunIdPath,
    svc: ServicesDep,
    tenant_id: TenantDep,
    body: ResumeRequest | None = None,
    last_event_id: Annotated[int | None, Header(alias="Last-Event-ID", ge=0, le=MAX_CURSOR)] = None,
) -> Response:
    """Replay a background run's events after `starting_after` (or `Last-Event-ID`), then follow it live."""
    request = body or ResumeRequest()
    after = last_event_id if last_event_id is not None else request.starting_after
    frames = await svc.runs.resume(
        tenant_id,
        run_id,
        after_seq=after,
        include_pings=request.include_pings,
        poll_interval=request.poll_interval,
        batch_size=request.batch_size,
    )
    return sse_response(frames)


@router.get("/{run_id}/messages", response_model=list[LettaMessage])
async def list_run_messages(
    run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep, page: AscendingPageDep
) -> JSONResponse:
    """The messages a run committed to history (its input and every finished step)."""
    await svc.store.get_run(tenant_id, run_id)
    records = await svc.store.list_messages(tenant_id, page, run_id=run_id)
    return JSONResponse(within_budget([r.message for r in records], json_size))


@router.get("/{run_id}/usage")
async def get_run_usage(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Token usage of a run (Letta's shape); what its committed steps used while it is still running."""
    run = await svc.store.get_run(tenant_id, run_id)
    usage = run.usage
    if usage is None:
        steps = await svc.store.list_steps(tenant_id, run_id)
        prompt = sum(s.usage.get("prompt_tokens", 0) for s in steps)
        completion = sum(s.usage.get("completion_tokens", 0) for s in steps)
        usage = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}
    return {
        "completion_tokens": usage.get("completion_tokens", 0),
        "prompt_tokens": usage.get("prompt_tokens", 0),
        "total_tokens": usage.get("total_tokens", 0),
        "prompt_tokens_details": None,
        "completion_tokens_details": None,
    }


@router.get("/{run_id}/steps")
async def list_run_steps(run_id: RunIdPath, svc: ServicesDep, tenant_id: TenantDep) -> list[dict[str, Any]]:
    """The run's committed agent steps (Letta's `Step` fields that apply)."""
    run = await svc.store.get_run(tenant_id, run_id)
    out = []
    for step in await svc.store.list_steps(tenant_id, run_id):
        if step.agent_id is None:
            continue
        prompt, completion = step.usage.get("prompt_tokens", 0), step.usage.get("completion_tokens", 0)
        out.append(
            {
                "id": step.id,
                "run_id": run.id,
                "agent_id": step.agent_id,
                "status": "success",
                "stop_reason": step.stop_reason,
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "created_at": step.created_at,
            }
        )
    return out
