"""An agent's core memory during a run: its blocks, loaded fresh each step, and edits applied safely.

An agent's memory is its own blocks (`block_ids`) followed by its group's
shared blocks (`shared_block_ids`); a label already taken keeps the first
block. Blocks are read at every step, since other agents (sleeptime agents
in the background) may have changed them meanwhile, and every edit is a
compare-and-set on the block's version, retried on conflict, so two agents
editing one shared block never lose each other's edit.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from chorus.clock import now_iso
from chorus.engine import memory
from chorus.errors import Conflict, NotFound
from chorus.store.base import Store
from chorus.store.records import AgentRecord, BlockRecord

logger = logging.getLogger(__name__)

_ATTEMPTS = 20
_REMEMBERED = 32
"""Tool call ids a block remembers having applied."""


class AgentMemory:
    def __init__(self, store: Store, tenant_id: str, shared_block_ids: Sequence[str] = ()) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.shared = list(shared_block_ids)

    async def blocks(self, agent: AgentRecord) -> list[BlockRecord]:
        out: list[BlockRecord] = []
        labels: set[str] = set()
        for block_id in dict.fromkeys([*agent.block_ids, *self.shared]):
            try:
                block = await self.store.get_block(self.tenant_id, block_id)
            except NotFound:
                logger.warning("agent %s names memory block %s, which no longer exists", agent.id, block_id)
                continue
            if block.label not in labels:
                labels.add(block.label)
                out.append(block)
        return out

    async def call(
        self, agent: AgentRecord, name: str, arguments: Mapping[str, Any], call_id: str = ""
    ) -> tuple[str, Literal["success", "error"]]:
        """Run a memory tool; returns the tool's return text and status.

        The edit records its tool call id in the block, so the same call run again (a worker
        re-running an approved call after a crash) finds it applied and changes nothing."""
        label = arguments.get("label")
        for _ in range(_ATTEMPTS):
            block = next((b for b in await self.blocks(agent) if b.label == label), None)
            if block is None:
                return f"No memory block is labelled {label!r}.", "error"
            if call_id and call_id in block.applied_calls:
                return (
                    f"Memory block {block.label!r} updated ({len(block.value)} of {block.limit} characters).",
                    "success",
                )
            try:
                value = memory.edit(name, arguments, block)
            except memory.MemoryEditError as exc:
                return str(exc), "error"
            applied = [*block.applied_calls, call_id][-_REMEMBERED:] if call_id else block.applied_calls
            try:
                await self.store.update_block(
                    block.model_copy(update={"value": value, "updated_at": now_iso(), "applied_calls": applied}),
                    expect_version=block.version,
                )
            except Conflict:
                continue
            return f"Memory block {block.label!r} updated ({len(value)} of {block.limit} characters).", "success"
        return f"Memory block {label!r} is being edited by others too often; try again.", "error"
