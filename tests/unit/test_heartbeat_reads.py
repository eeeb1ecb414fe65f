"""A workflow task's heartbeat reads the run eventually consistently (half the read units), and still
sees a cancel; a leased worker's heartbeat reads the current run (it is how a takeover is seen)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from chorus.runs.holding import RunHolder
from chorus.runs.lease import Lease
from chorus.runs.loading import LoadedRun
from chorus.store.dynamodb_keys import record_key
from chorus.store.records import RunRecord
from support.dynamodb import dynamodb_store

NOW = "2026-11-25T08:00:00+00:00"
BEATS = 3


def run_reads(client: Any) -> tuple[list[bool], asyncio.Event]:
    """`ConsistentRead` of every `GetItem` of the run the client sends from now on, and an event
    set once there were `BEATS` (the store calls the client on its worker threads)."""
    seen: list[bool] = []
    enough = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == record_key("Run", "t1", "run-1"):
            seen.append(bool(params.get("ConsistentRead")))
            if len(seen) >= BEATS:
                loop.call_soon_threadsafe(enough.set)

    client.meta.events.register("provide-client-params.dynamodb.GetItem", hook)
    return seen, enough


async def watched(client: Any, lease: Lease) -> tuple[list[bool], bool]:
    """The heartbeat's run reads over a few beats, and whether it saw the cancel flag set meanwhile."""
    store = dynamodb_store(client)
    await store.open()
    try:
        run = RunRecord(tenant_id="t1", id="run-1", created_at=NOW, agent_id="a", background=True, status="running")
        await store.put_run(run)
        loaded = cast(LoadedRun, SimpleNamespace(run=run, cancel=asyncio.Event()))  # all a holder uses
        holder = RunHolder(store, loaded, lease)
        async with holder.holding():
            reads, enough = run_reads(client)
            await asyncio.wait_for(enough.wait(), timeout=30)  # a guard against a hang, not a measure
            beats = list(reads)  # the test's own reads below are not the heartbeat's
            stored = await store.get_run("t1", "run-1")
            await store.update_run(stored.model_copy(update={"cancel_requested": True}), expect_version=stored.version)
            await asyncio.wait_for(loaded.cancel.wait(), timeout=30)  # a guard against a hang, not a measure
        return beats, loaded.cancel.is_set()
    finally:
        await store.close()


async def test_a_workflow_tasks_heartbeat_reads_eventually_consistently_and_sees_a_cancel(dynamodb: Any) -> None:
    reads, cancelled = await watched(dynamodb, Lease(owner="workflow:run-1", heartbeat_s=0.01, renew=False))
    assert len(reads) >= BEATS and not any(reads)
    assert cancelled


async def test_a_leased_workers_heartbeat_reads_the_current_run(dynamodb: Any) -> None:
    reads, cancelled = await watched(dynamodb, Lease(owner="worker-1", ttl_s=30.0, heartbeat_s=0.01))
    assert len(reads) >= BEATS and all(reads)
    assert cancelled
