"""`/v1/groups`: create, list, read, update, delete.

All five manager types are validated at create/update time; a group's
manager type cannot change afterwards (400).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chorus.api.deps import GroupIdPath, PageDep, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.views import group_state
from chorus.clock import now_iso
from chorus.engine.managers.config import DEFAULT_MAX_BUFFER, DEFAULT_MIN_BUFFER
from chorus.errors import BadRequest
from chorus.ids import new_id
from chorus.runs.solo import visible_group
from chorus.schemas.resources import GroupCreate, GroupState, GroupUpdate
from chorus.store.base import Store
from chorus.store.records import GroupRecord

router = APIRouter(route_class=JsonRoute, prefix="/v1/groups", tags=["groups"])


async def _validate(
    store: Store, tenant_id: str, agent_ids: list[str], config: dict[str, Any], shared_block_ids: list[str]
) -> None:
    """Membership rules shared by create and update; referenced agents must exist (404 otherwise)."""
    if not agent_ids:
        raise BadRequest("A group needs at least one agent in agent_ids.")
    if len(set(agent_ids)) != len(agent_ids):
        raise BadRequest("agent_ids lists an agent more than once.")
    agents = [await store.get_agent(tenant_id, agent_id) for agent_id in agent_ids]
    for block_id in shared_block_ids:
        await store.get_block(tenant_id, block_id)
    manager_id = config.get("manager_agent_id")
    if manager_id is not None:
        await store.get_agent(tenant_id, manager_id)
    kind = config["manager_type"]
    if kind == "voice_sleeptime":
        low = config.get("min_message_buffer_length") or DEFAULT_MIN_BUFFER
        high = config.get("max_message_buffer_length") or DEFAULT_MAX_BUFFER
        if low <= 4:
            raise BadRequest("min_message_buffer_length must be greater than 4.")
        if high <= low:
            raise BadRequest(
                f"max_message_buffer_length ({high}) must be greater than min_message_buffer_length ({low})."
            )
    if kind in ("supervisor", "sleeptime", "voice_sleeptime") and not [a for a in agent_ids if a != manager_id]:
        role = "workers" if kind == "supervisor" else "sleeptime agents"
        raise BadRequest(f"A {kind} group needs agents besides its manager in agent_ids (its {role}).")
    if kind == "dynamic":
        names = [a.name for a in agents]
        if len(set(names)) != len(names):
            raise BadRequest("Agents of a dynamic group must have distinct names: the manager picks speakers by name.")


@router.post("", response_model=GroupState)
async def create_group(body: GroupCreate, svc: ServicesDep, tenant_id: TenantDep) -> GroupState:
    config = body.manager_config.model_dump()
    await _validate(svc.store, tenant_id, body.agent_ids, config, body.shared_block_ids)
    now = now_iso()
    group = GroupRecord(
        tenant_id=tenant_id,
        id=new_id("group"),
        created_at=now,
        updated_at=now,
        agent_ids=body.agent_ids,
        description=body.description,
        manager_config=config,
        shared_block_ids=body.shared_block_ids,
        hidden=body.hidden,
        project_id=body.project_id,
    )
    await svc.store.put_group(group)
    return group_state(group)


@router.get("", response_model=list[GroupState])
async def list_groups(svc: ServicesDep, tenant_id: TenantDep, page: PageDep) -> list[GroupState]:
    """The tenant's groups (the store leaves out the hidden ones carrying agents' direct conversations)."""
    return [group_state(g) for g in await svc.store.list_groups(tenant_id, page)]


@router.get("/{group_id}", response_model=GroupState)
async def get_group(group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep) -> GroupState:
    return group_state(await visible_group(svc.store, tenant_id, group_id))


@router.patch("/{group_id}", response_model=GroupState)
async def update_group(group_id: GroupIdPath, body: GroupUpdate, svc: ServicesDep, tenant_id: TenantDep) -> GroupState:
    group = await visible_group(svc.store, tenant_id, group_id)
    config = dict(group.manager_config)
    if body.manager_config is not None:
        new = body.manager_config.model_dump(exclude_unset=True)
        new_type = body.manager_config.manager_type
        if new_type != group.manager_type:
            raise BadRequest(f"A group's manager type cannot change (it is {group.manager_type!r}).")
        config.update(new)
    agent_ids = body.agent_ids if body.agent_ids is not None else group.agent_ids
    shared = body.shared_block_ids if body.shared_block_ids is not None else group.shared_block_ids
    await _validate(svc.store, tenant_id, agent_ids, config, shared)
    updated = group.model_copy(
        update={
            "agent_ids": agent_ids,
            "manager_config": config,
            "description": body.description if body.description is not None else group.description,
            "shared_block_ids": shared,
            "project_id": body.project_id if body.project_id is not None else group.project_id,
            "updated_at": now_iso(),
        }
    )
    await svc.store.put_group(updated)
    return group_state(updated)


@router.delete("/{group_id}")
async def delete_group(group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    await visible_group(svc.store, tenant_id, group_id)
    await svc.store.delete_group(tenant_id, group_id)
    return {"message": f"Group id={group_id} successfully deleted"}
