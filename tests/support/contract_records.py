"""Record factories of the contract suite (the same records go to every adapter)."""

from __future__ import annotations

import itertools
from typing import Any

from chorus.store.records import AgentRecord, BlockRecord, GroupRecord, MessageRecord, RunRecord, StepRecord

_ids = itertools.count(1)


def stamp(i: int) -> str:
    return f"2026-01-01T00:00:{i // 1_000_000:02d}.{i % 1_000_000:06d}+00:00"


EPOCH_NS = 1_767_225_600 * 1_000_000_000
"""`stamp(0)` in nanoseconds: a message's `position` counts from it, as a committed one counts from its
run's creation (a run's listing reads its group's history from about then on)."""


def agent(tenant: str = "t1", *, created: int = 0, id: str | None = None, **extra: Any) -> AgentRecord:
    fields: dict[str, Any] = {"name": "A", "system": "be brief", "model": "scripted/default", **extra}
    return AgentRecord(
        tenant_id=tenant,
        id=id or f"agent-{next(_ids):06d}",
        created_at=stamp(created),
        updated_at=stamp(created),
        **fields,
    )


def group(tenant: str = "t1", *, created: int = 0, id: str | None = None) -> GroupRecord:
    return GroupRecord(
        tenant_id=tenant,
        id=id or f"group-{next(_ids):06d}",
        created_at=stamp(created),
        updated_at=stamp(created),
        agent_ids=["agent-1"],
        manager_config={"manager_type": "round_robin"},
    )


def run(tenant: str = "t1", *, created: int = 0, id: str | None = None, **extra: Any) -> RunRecord:
    fields: dict[str, Any] = {"agent_id": "agent-1", "group_id": "group-1", **extra}
    return RunRecord(tenant_id=tenant, id=id or f"run-{next(_ids):06d}", created_at=stamp(created), **fields)


def step(r: RunRecord, key: str, **extra: Any) -> StepRecord:
    return StepRecord(
        tenant_id=r.tenant_id, id=f"step-{r.id}-{key}", created_at=stamp(0), run_id=r.id, step_key=key, **extra
    )


def message(
    r: RunRecord, key: str, index: int, *, position: int = 0, agent_id: str | None = "agent-1", text: str = "hi"
) -> MessageRecord:
    return MessageRecord(
        tenant_id=r.tenant_id,
        id=f"message-{next(_ids):06d}",
        created_at=stamp(0),
        group_id=r.group_id,
        agent_id=agent_id,
        run_id=r.id,
        step_key=key,
        index=index,
        position=f"{EPOCH_NS + position:020d}:{r.id}:{key}:{index:04d}",
        message={"message_type": "assistant_message", "content": text},
    )


def block(tenant: str = "t1", *, created: int = 0, label: str = "human", value: str = "") -> BlockRecord:
    return BlockRecord(
        tenant_id=tenant,
        id=f"block-{next(_ids):06d}",
        created_at=stamp(created),
        updated_at=stamp(created),
        label=label,
        value=value,
    )
