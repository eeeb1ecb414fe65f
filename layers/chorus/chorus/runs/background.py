"""Sleeptime agents' background runs: what they are given and how they are started, once.

When a sleeptime manager finishes a run with `background` agents, each gets
a run of its own over the group's messages the sleeptime agents have not
been given yet (`last_processed_message_id` marks where the last hand-over
ended). The child run's id is derived from the parent run and the agent,
so a parent re-driven after a crash finds its children instead of starting
them twice; then the group's marker moves on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from chorus.clock import now_iso
from chorus.engine import identity
from chorus.engine.managers import EndRun
from chorus.engine.sleeptime import transcript
from chorus.errors import NotFound
from chorus.runs.options import RunOptions
from chorus.store.base import Store
from chorus.store.records import GroupRecord, RunRecord
from chorus.tracing import tracer

Spawn = Callable[[RunRecord], Awaitable[None]]
"""Hands a run to whoever executes runs (this process, or a Step Functions execution)."""


def unprocessed(history: Sequence[dict[str, Any]], marker: str | None) -> Sequence[dict[str, Any]]:
    """History after the message `marker` (all of it when unset or gone)."""
    if marker is not None:
        for i, message in enumerate(history):
            if message.get("id") == marker:
                return history[i + 1 :]
    return history


async def start_background(
    store: Store,
    parent: RunRecord,
    group: GroupRecord,
    history: Sequence[dict[str, Any]],
    decision: EndRun,
    spawn: Spawn | None,
) -> list[str]:
    """Start the decision's background runs; returns their ids (none when nothing is new).

    Re-entrant: a parent re-driven after its worker died finds the children that worker
    started (their ids are fixed) even if it had already moved the group's marker on."""
    wanted = {agent_id: identity.child_run_id(parent.id, agent_id) for agent_id in decision.background}
    started = [run_id for run_id in wanted.values() if await _exists(store, parent.tenant_id, run_id)]
    if len(started) == len(wanted):
        return started
    pending = unprocessed(history, group.last_processed_message_id)
    if decision.keep_recent is not None:
        pending = pending[: max(0, len(pending) - decision.keep_recent)]
    if not pending:
        return started
    text = transcript(pending)
    for agent_id, run_id in wanted.items():
        if run_id not in started:
            child = await _child_run(store, parent, group, agent_id, text)
            if spawn is not None:
                await spawn(child)
    current = await store.get_group(group.tenant_id, group.id)
    await store.put_group(
        current.model_copy(update={"last_processed_message_id": pending[-1]["id"], "updated_at": now_iso()})
    )
    return list(wanted.values())


async def _exists(store: Store, tenant_id: str, run_id: str) -> bool:
    try:
        await store.get_run(tenant_id, run_id)
    except NotFound:
        return False
    return True


async def _child_run(store: Store, parent: RunRecord, group: GroupRecord, agent_id: str, text: str) -> RunRecord:
    child = RunRecord(
        tenant_id=parent.tenant_id,
        id=identity.child_run_id(parent.id, agent_id),
        created_at=now_iso(),
        agent_id=agent_id,
        background=True,
        metadata={
            "run_type": "sleeptime_agent_send_message_async",
            "agent_id": agent_id,
            "group_id": group.id,
            "parent_run_id": parent.id,
        },
        inputs=[{"role": "user", "content": text}],
        traceparent=tracer().new_trace(),
        options={"stream_tokens": False, "max_steps": RunOptions.of(parent).max_steps},
    )
    await store.put_run(child)
    return child
