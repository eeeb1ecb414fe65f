"""Loading what a run needs to execute: its group, its agents, the memory they share.

Shared by every worker of a run, the in-process executor and each Step
Functions task alike, so they all see the same plan.
"""

from __future__ import annotations

import asyncio

from chorus.errors import NotFound
from chorus.runs.driver import RunPlan
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, RunRecord


def members(group: GroupRecord) -> list[str]:
    """Every agent a group's runs may call: its `agent_ids` and its manager agent."""
    manager = group.manager_config.get("manager_agent_id")
    return [*group.agent_ids, *([manager] if manager and manager not in group.agent_ids else [])]


async def load_plan(
    store: Store,
    run: RunRecord,
    cancel: asyncio.Event | None = None,
    *,
    preloaded: tuple[GroupRecord, dict[str, AgentRecord]] | None = None,
) -> RunPlan:
    """The run's plan; `NotFound` when its group or one of its agents is gone. A send that has just
    read and validated the group and its agents passes them as `preloaded` (nothing is read again)."""
    group: GroupRecord | None
    if preloaded is not None:
        group, agents = preloaded
    else:
        group = await store.get_group(run.tenant_id, run.group_id) if run.group_id else None
        ids = members(group) if group is not None else [run.agent_id]
        agents = {a: await store.get_agent(run.tenant_id, a) for a in ids}
    return RunPlan(
        run=run,
        group=group,
        agents=agents,
        cancel=cancel or asyncio.Event(),
        shared_block_ids=await shared_blocks(store, run, group),
    )


async def shared_blocks(store: Store, run: RunRecord, group: GroupRecord | None) -> list[str]:
    """The group's shared memory; a sleeptime agent's run edits its parent group's."""
    if group is not None:
        return list(group.shared_block_ids)
    parent_group = run.metadata.get("group_id")
    if not parent_group:
        return []
    try:
        return list((await store.get_group(run.tenant_id, str(parent_group))).shared_block_ids)
    except NotFound:
        return []
