"""Writes that several routes share: a new block, an edit of a block, attaching a block or tool to an agent.

Routes import these (and `chorus.api.views`), never another route module.
"""

from __future__ import annotations

from typing import Literal

from chorus.api.views import agent_view
from chorus.clock import now_iso
from chorus.errors import BadRequest, Conflict, NotFound
from chorus.ids import new_id
from chorus.schemas.resources import AgentState, BlockCreate, BlockUpdate
from chorus.store.base import Store
from chorus.store.records import AgentRecord, BlockRecord

_CLEARABLE = {"description", "metadata"}
"""Fields an update may set to null; a null for any other (`value`, `limit`, …) leaves it unchanged."""


def new_block(tenant_id: str, body: BlockCreate) -> BlockRecord:
    if len(body.value) > body.limit:
        raise BadRequest(f"Block value has {len(body.value)} characters, over its limit of {body.limit}.")
    now = now_iso()
    return BlockRecord(tenant_id=tenant_id, id=new_id("block"), created_at=now, updated_at=now, **body.model_dump())


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


async def change_attachment(
    store: Store, agent: AgentRecord, field: Literal["block_ids", "tool_ids"], item_id: str, *, attach: bool
) -> AgentState:
    """Attach (idempotently) or detach (404 if not attached) a block or tool; answers the agent."""
    current: list[str] = getattr(agent, field)
    if attach and item_id not in current:
        agent = agent.model_copy(update={field: [*current, item_id], "updated_at": now_iso()})
        await store.put_agent(agent)
    elif not attach:
        if item_id not in current:
            raise NotFound(f"{item_id} is not attached to agent {agent.id}.")
        agent = agent.model_copy(update={field: [i for i in current if i != item_id], "updated_at": now_iso()})
        await store.put_agent(agent)
    return (await agent_view(store, agent)).state
