"""An agent's direct conversation: a hidden one-member group, so an agent run is a group run.

`/v1/agents/{agent_id}/messages…` could have had a run machinery of its own.
Instead each agent gets, on its first direct message, a group of which it is
the only member (round robin, one turn per send: the agent steps on through
its tool calls until it ends its turn, as a Letta agent does). Its runs then
have, from the tested group code and with nothing written twice, everything
a group run has: one active run at a time (409 naming it), the tenant's
active-run limit, `Idempotency-Key`, approvals, background runs on Step
Functions, resume, cancel, crash recovery.

The group is hidden: `solo_agent_id` marks it, the store leaves it out of
`GET /v1/groups`, every group route answers 404 for it, and a run of it shows
no `group_id`. Its id is derived from the agent's (same uuid), so a send
finds it with one read, two first sends race harmlessly (both write the same
record), and deleting the agent finds it without an index.

The direct conversation is the agent's own history, apart from the
conversations of the groups it is in (docs/api.md says what each side sees).
"""

from __future__ import annotations

import contextlib
from typing import Protocol

from chorus.clock import now_iso
from chorus.errors import NotFound
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, RunRecord


class Runs(Protocol):
    """What ending a conversation needs of the run service: its active runs, and cancelling them."""

    async def active_runs(
        self, tenant_id: str, *, group_id: str | None = None, agent_id: str | None = None
    ) -> list[RunRecord]: ...

    async def cancel(self, tenant_id: str, runs: list[RunRecord]) -> dict[str, str]: ...


SOLO_MANAGER = {"manager_type": "round_robin", "max_turns": 1}
"""One turn of the agent per send; the turn itself takes as many steps as the agent needs."""


def solo_group_id(agent_id: str) -> str:
    """The id of the group carrying `agent_id`'s direct conversation (`agent-<uuid>` → `group-<uuid>`)."""
    return "group-" + agent_id.removeprefix("agent-")


def is_solo_run(run: RunRecord) -> bool:
    """Whether the run belongs to its agent's direct conversation (not to a group the agent is in).

    Group ids are fresh uuid4s, so only a solo group's id equals the one derived from the agent."""
    return run.group_id is not None and run.group_id == solo_group_id(run.agent_id)


async def solo_group(store: Store, agent: AgentRecord) -> GroupRecord:
    """The agent's direct conversation, created on first use."""
    group_id = solo_group_id(agent.id)
    try:
        return await store.get_group(agent.tenant_id, group_id)
    except NotFound:
        pass
    now = now_iso()
    group = GroupRecord(
        tenant_id=agent.tenant_id,
        id=group_id,
        created_at=now,
        updated_at=now,
        agent_ids=[agent.id],
        manager_config=dict(SOLO_MANAGER),
        solo_agent_id=agent.id,
    )
    await store.put_group(group)
    return group


async def visible_group(store: Store, tenant_id: str, group_id: str) -> GroupRecord:
    """A group the group routes may show: 404 for an agent's hidden direct conversation, as for a missing one."""
    group = await store.get_group(tenant_id, group_id)
    if group.solo_agent_id is not None:
        raise NotFound(f"Group not found: {group_id}")
    return group


async def forget_solo(store: Store, tenant_id: str, agent_id: str) -> int:
    """Drop the agent's direct conversation (its history and its group); returns how many messages went.

    The next direct message starts afresh, with no pending approval: the group is created anew."""
    group_id = solo_group_id(agent_id)
    deleted = await store.delete_group_messages(tenant_id, group_id)
    with contextlib.suppress(NotFound):
        await store.delete_group(tenant_id, group_id)
    return deleted


async def end_solo(store: Store, runs: Runs, tenant_id: str, agent_id: str) -> None:
    """With the agent gone: cancel its direct conversation's active runs and drop that conversation.

    A cancelled run stops at its next chunk; a step it commits after the history is dropped is
    left under the deleted group's id, reachable only through its run."""
    active = await runs.active_runs(tenant_id, group_id=solo_group_id(agent_id))
    if active:
        await runs.cancel(tenant_id, active)
    await forget_solo(store, tenant_id, agent_id)
