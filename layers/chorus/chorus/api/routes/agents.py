"""`/v1/agents`: create, list, read, update, delete."""

from __future__ import annotations

from fastapi import APIRouter

from chorus.api.changes import new_block
from chorus.api.deps import AgentIdPath, PageDep, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import ITEM_OVERHEAD
from chorus.api.views import agent_view, agent_views
from chorus.clock import now_iso
from chorus.errors import BadRequest
from chorus.ids import new_id
from chorus.limits import MAX_LISTING_CHARS
from chorus.llm.resolve import check_handle, default_model_handle
from chorus.runs.solo import end_solo
from chorus.schemas.resources import AgentCreate, AgentState, AgentUpdate
from chorus.store.base import Store
from chorus.store.records import AgentRecord

router = APIRouter(route_class=JsonRoute, prefix="/v1/agents", tags=["agents"])

DEFAULT_SYSTEM = "You are a helpful agent taking part in a group conversation."


async def _check_refs(store: Store, tenant_id: str, block_ids: list[str], tool_ids: list[str]) -> None:
    """Referenced blocks and tools must exist (404, also for another tenant's)."""
    for block_id in block_ids:
        await store.get_block(tenant_id, block_id)
    for tool_id in tool_ids:
        await store.get_tool(tenant_id, tool_id)


@router.post("", response_model=AgentState)
async def create_agent(body: AgentCreate, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    model = body.model or default_model_handle(svc.settings.default_model)
    check_handle(model, body.metadata)
    await _check_refs(svc.store, tenant_id, body.block_ids, body.tool_ids)
    labels = [b.label for b in body.memory_blocks]
    if len(set(labels)) != len(labels):
        raise BadRequest("memory_blocks names a label more than once.")
    created = [new_block(tenant_id, b) for b in body.memory_blocks]
    for block in created:
        await svc.store.put_block(block)
    agent_id = new_id("agent")
    now = now_iso()
    agent = AgentRecord(
        tenant_id=tenant_id,
        id=agent_id,
        created_at=now,
        updated_at=now,
        name=body.name or f"agent-{agent_id[6:14]}",
        system=body.system or DEFAULT_SYSTEM,
        model=model,
        agent_type=body.agent_type,
        reasoning=bool(body.reasoning if body.reasoning is not None else body.enable_reasoner),
        description=body.description,
        tags=body.tags,
        metadata=body.metadata,
        block_ids=list(dict.fromkeys([*(b.id for b in created), *body.block_ids])),
        tool_ids=list(dict.fromkeys(body.tool_ids)),
        tool_rules=[r.model_dump() for r in body.tool_rules],
    )
    await svc.store.put_agent(agent)
    return (await agent_view(svc.store, agent)).state


@router.get("", response_model=list[AgentState])
async def list_agents(svc: ServicesDep, tenant_id: TenantDep, page: PageDep) -> list[AgentState]:
    """Agents with their blocks and tools; a page ends early at `MAX_LISTING_CHARS` (see `chorus.api.listing`)."""
    out: list[AgentState] = []
    total = 0
    agents = await svc.store.list_agents(tenant_id, page)
    for agent, view in zip(agents, await agent_views(svc.store, agents), strict=True):
        blocks = sum(len(b.value) for b in view.blocks_state)  # twice: in `blocks` and in `memory`
        total += (
            ITEM_OVERHEAD + len(agent.system) + 2 * blocks + sum(len(t.source_code or "") for t in view.tools_state)
        )
        if out and total > MAX_LISTING_CHARS:
            break
        out.append(view.state)
    return out


@router.get("/{agent_id}", response_model=AgentState)
async def get_agent(agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    return (await agent_view(svc.store, await svc.store.get_agent(tenant_id, agent_id))).state


@router.patch("/{agent_id}", response_model=AgentState)
async def update_agent(agent_id: AgentIdPath, body: AgentUpdate, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    await _check_refs(svc.store, tenant_id, changes.get("block_ids", []), changes.get("tool_ids", []))
    updated = agent.model_copy(update={**changes, "updated_at": now_iso()})
    check_handle(updated.model, updated.metadata)
    await svc.store.put_agent(updated)
    return (await agent_view(svc.store, updated)).state


@router.delete("/{agent_id}")
async def delete_agent(agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    """Delete the agent with its direct conversation (the histories of its groups stay)."""
    await svc.store.get_agent(tenant_id, agent_id)
    await end_solo(svc.store, svc.runs, tenant_id, agent_id)
    await svc.store.delete_agent(tenant_id, agent_id)
    return {"message": f"Agent id={agent_id} successfully deleted"}
