"""`/v1/groups/{group_id}/messages…`: the main endpoint, its non-streaming and async twins, cancel, history.

How a send is answered (streaming or not, `Idempotency-Key`) is `chorus.api.message_sends`, shared with
the agent routes. Beyond Letta: a send to a group whose previous run is still active is a 409 naming it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from chorus.api.deps import GroupIdPath, PageDep, Services, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import json_size, within_budget
from chorus.api.message_sends import Start, add_send_routes
from chorus.errors import Conflict
from chorus.runs.solo import visible_group
from chorus.runs.starting import Started
from chorus.schemas.messages import LettaMessage
from chorus.schemas.requests import CancelRequest, MessageRequest

router = APIRouter(route_class=JsonRoute, prefix="/v1/groups/{group_id}", tags=["groups"])


def _starter(svc: Services, tenant_id: str, group_id: str, idempotency_key: str | None) -> Start:
    async def start(body: MessageRequest, streaming: bool) -> Started:
        return await svc.runs.start_group_run(
            tenant_id, group_id, body, streaming=streaming, idempotency_key=idempotency_key
        )

    return start


add_send_routes(router, "group", _starter)


@router.post("/messages/cancel")
async def cancel_group_runs(
    group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep, body: CancelRequest | None = None
) -> dict[str, Any]:
    """Cancel the group's active runs (or the listed ones); 409 when none is active."""
    await visible_group(svc.store, tenant_id, group_id)
    return await svc.runs.cancel_active(tenant_id, "group", group_id, body.run_ids if body else None)


@router.get("/messages", response_model=list[LettaMessage])
async def list_group_messages(
    group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep, page: PageDep
) -> JSONResponse:
    """The group's history, newest first by default; `before`/`after` are message ids."""
    await visible_group(svc.store, tenant_id, group_id)
    records = await svc.store.list_messages(tenant_id, page, group_id=group_id)
    return JSONResponse(within_budget([r.message for r in records], json_size))


@router.patch("/reset-messages")
async def reset_group_messages(group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Forget the group's history (409 while a run is active: it would write into the void)."""
    await visible_group(svc.store, tenant_id, group_id)
    active = await svc.runs.active_runs(tenant_id, group_id=group_id)
    if active:
        raise Conflict(f"Group {group_id} has an active run ({active[0].id}).", run_id=active[0].id)
    deleted = await svc.store.delete_group_messages(tenant_id, group_id)
    return {"message": f"Reset {deleted} messages of group {group_id}"}
