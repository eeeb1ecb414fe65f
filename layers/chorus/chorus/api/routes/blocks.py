"""`/v1/blocks`: memory blocks as resources of their own, shared by agents and groups (Letta's blocks API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chorus.api.changes import change_block, new_block
from chorus.api.deps import BlockIdPath, PageDep, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import ITEM_OVERHEAD, within_budget
from chorus.api.views import block_state
from chorus.schemas.resources import BlockCreate, BlockState, BlockUpdate

router = APIRouter(route_class=JsonRoute, prefix="/v1/blocks", tags=["blocks"])


@router.post("", response_model=BlockState)
async def create_block(body: BlockCreate, svc: ServicesDep, tenant_id: TenantDep) -> BlockState:
    block = new_block(tenant_id, body)
    await svc.store.put_block(block)
    return block_state(block)


@router.get("", response_model=list[BlockState])
async def list_blocks(
    svc: ServicesDep, tenant_id: TenantDep, page: PageDep, label: Annotated[str | None, Query()] = None
) -> list[BlockState]:
    blocks = await svc.store.list_blocks(tenant_id, page, label=label)
    return [block_state(b) for b in within_budget(blocks, lambda b: ITEM_OVERHEAD + len(b.value))]


@router.get("/{block_id}", response_model=BlockState)
async def get_block(block_id: BlockIdPath, svc: ServicesDep, tenant_id: TenantDep) -> BlockState:
    return block_state(await svc.store.get_block(tenant_id, block_id))


@router.patch("/{block_id}", response_model=BlockState)
async def update_block(block_id: BlockIdPath, body: BlockUpdate, svc: ServicesDep, tenant_id: TenantDep) -> BlockState:
    block = await svc.store.get_block(tenant_id, block_id)
    return block_state(await change_block(svc.store, block, body))


@router.delete("/{block_id}")
async def delete_block(block_id: BlockIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    await svc.store.delete_block(tenant_id, block_id)
    return {"message": f"Block id={block_id} successfully deleted"}
