"""`/v1/blocks`: memory blocks as resources of their own, shared by agents and groups (Letta's blocks API)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chorus.api.deps import BlockIdPath, PageDep, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import ITEM_OVERHEAD, within_budget
from chorus.clock import now_iso
from chorus.errors import BadRequest, Conflict
from chorus.ids import new_id
from chorus.schemas.resources import BlockCreate, BlockState, BlockUpdate
from chorus.store.base import Store
from chorus.store.records import BlockRecord

router = APIRouter(route_class=JsonRoute, prefix="/v1/blocks", tags=["blocks"])


def block_state(block: BlockRecord) -> BlockState:
    return BlockState(
        id=block.id,
        label=block.label,
        value=block.value,
        limit=block.limit,
        description=block.description,
        read_only=block.read_only,
        metadata=block.metadata,
    )


def new_block(tenant_id: str, body: BlockCreate) -> BlockRecord:
    if len(body.value) > body.limit:
        raise BadRequest(f"Block value has {len(body.value)} characters, over its limit of {body.limit}.")
    now = now_iso()
    return BlockRecord(tenant_id=tenant_id, id=new_id("block"), created_at=now, updated_at=now, **body.model_dump())


_CLEARABLE = {"description", "metadata"}
"""Fields an update may set to null; a null for any other (`value`, `limit`, …) leaves it unchanged."""


async def change_block(store: Store, block: BlockRecord, body: BlockUpdate) -> BlockRecord:
    """Apply an update with compare-and-set (agents may be editing the block right now)."""
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in _CLEARABLE}
    for _ in range(20):
        updated = block.model_copy(update={**changes, "updated_at": now_iso()})
        if len(updated.value) > updated.limit:
            raise BadRequest(f"Block value has {len(updated.value)} characters, over its limit of {updated.limit}.")
        try:
            return await store.update_block(updated, expect_version=block.version)
        except Conflict:
            block = await store.get_block(block.tenant_id, block.id)
    raise Conflict(f"Block {block.id} is being edited too often; try again.")


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
