"""Loading what a run needs to execute: its group, its agents, the memory they share.

Shared by every worker of a run, the in-process executor and each Step
Functions task alike, so they all see the same run.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chorus.engine.managers import GroupView
from chorus.engine.managers.config import ManagerSettings
from chorus.errors import NotFound
from chorus.runs.options import RunOptions
from chorus.schemas.requests import MessageCreate
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, RunRecord


@dataclass(slots=True)
class LoadedRun:
    """Everything a run needs, loaded and validated before the first byte is sent."""

    run: RunRecord
    """The run as last written by this worker (the lease holder and the finisher keep it current)."""
    group: GroupRecord | None
    """None for a run of one agent outside any group's history (a sleeptime agent's run)."""
    agents: dict[str, AgentRecord]
    view: GroupView
    """What the manager reads of the group, its `manager_config` typed (read once, here)."""
    cancel: asyncio.Event = field(default_factory=asyncio.Event)
    shared_block_ids: list[str] = field(default_factory=list)
    """Memory blocks every agent of the run shares: its group's (a sleeptime run: its parent group's)."""

    @property
    def stream_tokens(self) -> bool:
        return RunOptions.of(self.run).stream_tokens

    @property
    def inputs(self) -> list[MessageCreate]:
        return [MessageCreate.model_validate(m) for m in self.run.inputs]


def group_view(run: RunRecord, group: GroupRecord | None, agents: dict[str, AgentRecord]) -> GroupView:
    """The manager's view of the run's group; a run outside any group is one turn of its agent."""
    names = {a.id: a.name for a in agents.values()}
    if group is None:
        return GroupView("", (run.agent_id,), ManagerSettings(manager_type="round_robin", max_turns=1), names)
    return GroupView(group.id, tuple(group.agent_ids), ManagerSettings.of(group.manager_config), names)


def members(group: GroupRecord) -> list[str]:
    """Every agent a group's runs may call: its `agent_ids` and its manager agent."""
    manager = ManagerSettings.of(group.manager_config).manager_agent_id
    return [*group.agent_ids, *([manager] if manager and manager not in group.agent_ids else [])]


async def load_run(
    store: Store,
    run: RunRecord,
    cancel: asyncio.Event | None = None,
    *,
    preloaded: tuple[GroupRecord, dict[str, AgentRecord]] | None = None,
) -> LoadedRun:
    """What the run needs; `NotFound` when its group or one of its agents is gone. A send that has
    just read and validated the group and its agents passes them as `preloaded` (nothing is read again)."""
    group: GroupRecord | None
    if preloaded is not None:
        group, agents = preloaded
    else:
        group = await store.get_group(run.tenant_id, run.group_id) if run.group_id else None
        ids = members(group) if group is not None else [run.agent_id]
        agents = {a: await store.get_agent(run.tenant_id, a) for a in ids}
    return LoadedRun(
        run=run,
        group=group,
        agents=agents,
        view=group_view(run, group, agents),
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
