"""`/v1/agents/{agent_id}/core-memory/blocks…`: an agent's memory blocks, by label, and attaching blocks.

Letta's routes: list the agent's blocks, read or modify one by its label,
attach or detach a block by id (both answer the agent). The agent's own
blocks are listed; a group's shared blocks join its memory only during
that group's runs.
"""

from __future__ import annotations

from fastapi import APIRouter

from chorus.api.changes import change_attachment, change_block
from chorus.api.deps import AgentIdPath, AscendingPageDep, BlockIdPath, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import page_through
from chorus.api.views import agent_view, block_state
from chorus.errors import NotFound
from chorus.schemas.resources import AgentState, BlockState, BlockUpdate
from chorus.store.base import Store
from chorus.store.records import AgentRecord, BlockRecord

router = APIRouter(route_class=JsonRoute, prefix="/v1/agents/{agent_id}/core-memory/blocks", tags=["agents"])


async def _by_label(store: Store, agent: AgentRecord, label: str) -> BlockRecord:
    for block in await store.get_blocks(agent.tenant_id, agent.block_ids):
        if block.label == label:
            return block
    raise NotFound(f"Agent {agent.id} has no memory block labelled {label!r}.")


@router.get("", response_model=list[BlockState])
async def list_agent_blocks(
    agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep, page: AscendingPageDep
) -> list[BlockState]:
    """In attachment order by default; `after`/`before` are block ids, as the SDK's pager sends them."""
    blocks = (await agent_view(svc.store, await svc.store.get_agent(tenant_id, agent_id))).blocks_state
    return page_through(blocks, page, lambda b: b.id)


@router.get("/{block_label}", response_model=BlockState)
async def get_agent_block(
    agent_id: AgentIdPath, block_label: str, svc: ServicesDep, tenant_id: TenantDep
) -> BlockState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    return block_state(await _by_label(svc.store, agent, block_label))


@router.patch("/{block_label}", response_model=BlockState)
async def update_agent_block(
    agent_id: AgentIdPath, block_label: str, body: BlockUpdate, svc: ServicesDep, tenant_id: TenantDep
) -> BlockState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    block = await _by_label(svc.store, agent, block_label)
    return block_state(await change_block(svc.store, block, body))


@router.patch("/attach/{block_id}", response_model=AgentState)
async def attach_block(
    agent_id: AgentIdPath, block_id: BlockIdPath, svc: ServicesDep, tenant_id: TenantDep
) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    await svc.store.get_block(tenant_id, block_id)
    return await change_attachment(svc.store, agent, "block_ids", block_id, attach=True)


@router.patch("/detach/{block_id}", response_model=AgentState)
async def detach_block(
    agent_id: AgentIdPath, block_id: BlockIdPath, svc: ServicesDep, tenant_id: TenantDep
) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    return await change_attachment(svc.store, agent, "block_ids", block_id, attach=False)
