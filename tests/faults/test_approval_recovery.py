"""A worker dies while resuming a group after a human's approval; another finishes the resumption exactly once."""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path

from chorus.runs.service import RunService
from chorus.schemas.requests import MessageRequest
from chorus.settings import Settings
from chorus.store.records import AgentRecord, BlockRecord, GroupRecord, Page
from chorus.store.sqlite import SQLiteStore
from support.crashes import TENANT, Crash, CrashingStore, Switch

NOW = "2026-11-24T06:33:05.000000+00:00"
GROUP = "group-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
CALL = {"name": "core_memory_append", "arguments": {"label": "notes", "content": "likes tea"}}


async def seed(store: SQLiteStore) -> None:
    await store.put_block(
        BlockRecord(tenant_id=TENANT, id="block-1", created_at=NOW, updated_at=NOW, label="notes", value="")
    )
    for agent_id, name, script, extra in [
        ("agent-1", "Ada", {"steps": [[CALL]], "replies": ["Saved."]}, {"block_ids": ["block-1"]}),
        ("agent-2", "Bo", {"replies": ["Bo here."], "use_tools": False}, {}),
    ]:
        await store.put_agent(
            AgentRecord(
                tenant_id=TENANT,
                id=agent_id,
                created_at=NOW,
                updated_at=NOW,
                name=name,
                system="s",
                model="scripted/default",
                metadata={"scripted": script},
                tool_rules=[{"type": "requires_approval", "tool_name": "core_memory_append"}],
                **extra,
            )
        )
    await store.put_group(
        GroupRecord(
            tenant_id=TENANT,
            id=GROUP,
            created_at=NOW,
            updated_at=NOW,
            agent_ids=["agent-1", "agent-2"],
            manager_config={"manager_type": "round_robin"},
        )
    )


def settings(db: Path) -> Settings:
    return Settings(db_path=db, log_flush_interval_s=60, log_flush_events=3)


async def test_a_crashed_resumption_is_finished_once_by_another_worker(tmp_path: Path) -> None:
    db = tmp_path / "chorus.db"
    store = SQLiteStore(db)
    await store.open()
    await seed(store)
    first = RunService(store, settings(db))
    paused = await first.start_group_run(TENANT, GROUP, MessageRequest(input="remember tea"), streaming=True)
    assert (await first.wait_terminal(TENANT, paused.run.id)).stop_reason == "requires_approval"
    await first.shutdown()
    pending = (await store.get_group(TENANT, GROUP)).pending_approval
    assert pending is not None
    call_id = pending.tool_calls[0].tool_call_id

    # worker A starts the resumption and dies committing its first agent step (after the inputs step)
    switch = Switch(at_call=("commit_step", 2))
    worker_a = RunService(CrashingStore(store, switch), settings(db), lease_ttl_s=0.05, heartbeat_s=60)
    approval = {"type": "approval", "approvals": [{"type": "approval", "tool_call_id": call_id, "approve": True}]}
    started = await worker_a.start_group_run(
        TENANT, GROUP, MessageRequest.model_validate({"messages": [approval]}), streaming=True
    )
    with contextlib.suppress(Crash):
        await worker_a.executor.wait(started.run.id)
    for task in list(worker_a.executor._tasks.values()):
        task.cancel()
    await asyncio.gather(*(a.log.abort() for a in worker_a._active.values()), return_exceptions=True)
    assert switch.dead
    assert (await store.get_group(TENANT, GROUP)).pending_approval is not None, "nothing was committed yet"
    await asyncio.sleep(0.06)  # the dead worker's lease expires

    worker_b = RunService(store, settings(db), orphan_grace_s=0.05)
    await worker_b.recover()
    final = await asyncio.wait_for(worker_b.wait_terminal(TENANT, started.run.id), 10)
    assert final.status == "completed" and final.stop_reason == "end_turn"
    history = await store.list_messages(TENANT, Page(limit=100, order="asc"), group_id=GROUP)
    kinds = [(m.message["message_type"], m.message.get("name")) for m in history]
    assert kinds == [
        ("user_message", None),
        ("approval_request_message", "Ada"),
        ("approval_response_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Ada"),
        ("assistant_message", "Bo"),
    ], "the resumed turn is in history once"
    assert (await store.get_group(TENANT, GROUP)).pending_approval is None
    log = await store.read_events(TENANT, started.run.id, 0, 1000)
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1)) and log[-1][1] == "[DONE]"
    markers = [json.loads(d) for _, d in log[:-1] if '"abandoned"' in d]
    assert len(markers) <= 1, "at most the dead worker's unfinished step is marked"
    # the dead worker ran the approved edit before it died; the new one runs the same call id and
    # finds it applied: the memory edit happened once
    assert (await store.get_block(TENANT, "block-1")).value == "likes tea"
    await worker_b.shutdown()
    await store.close()
