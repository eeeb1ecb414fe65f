"""What a heartbeat reads each beat: the run's version alone while nothing changed, the whole run once
it did. Every beat reads eventually consistently (half the read units) and still sees a cancel, and a
leased worker's a takeover: neither goes back, so a stale read only sees it late."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Read:
    consistent: bool
    whole: bool
    """The whole item (else its `version` alone)."""


def run_reads(client: Any) -> tuple[list[Read], asyncio.Event]:
    """Every `GetItem` of the run the client sends from now on, and an event set once there were
    `BEATS` (the store calls the client on its worker threads)."""
    seen: list[Read] = []
    enough = asyncio.Event()
    loop = asyncio.get_running_loop()

    def hook(params: dict[str, Any], **_: Any) -> None:
        if params["Key"] == record_key("Run", "t1", "run-1"):
            seen.append(Read(bool(params.get("ConsistentRead")), "ProjectionExpression" not in params))
            if len(seen) >= BEATS:
                loop.call_soon_threadsafe(enough.set)

    client.meta.events.register("provide-client-params.dynamodb.GetItem", hook)
    return seen, enough


async def watched(
    client: Any, lease: Lease, change: dict[str, Any] | None = None
) -> tuple[list[Read], list[Read], bool, bool]:
    """The heartbeat's run reads over a few quiet beats, then until it saw the run changed meanwhile
    (its cancel flag set, unless `change` says otherwise); whether it stopped, and whether it
    counted the run lost."""
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
            quiet = len(reads)
            current = loaded.run  # as the holder wrote it: the cancel below reads nothing itself
            update = change if change is not None else {"cancel_requested": True}
            await store.update_run(current.model_copy(update=update), expect_version=current.version)
            await asyncio.wait_for(loaded.cancel.wait(), timeout=30)
            return reads[:quiet], reads[quiet:], loaded.cancel.is_set(), holder.lost
    finally:
        await store.close()


async def test_a_workflow_tasks_heartbeat_reads_eventually_consistently_and_sees_a_cancel(dynamodb: Any) -> None:
    quiet, after, cancelled, _ = await watched(dynamodb, Lease(owner="workflow:run-1", heartbeat_s=0.01, renew=False))
    assert len(quiet) >= BEATS and quiet == [Read(consistent=False, whole=False)] * len(quiet)
    assert cancelled and Read(consistent=False, whole=True) in after
    assert all(not r.consistent for r in after)


async def test_a_leased_workers_heartbeat_reads_eventually_consistently_and_sees_a_cancel(dynamodb: Any) -> None:
    quiet, after, cancelled, _ = await watched(dynamodb, Lease(owner="worker-1", ttl_s=30.0, heartbeat_s=0.01))
    assert len(quiet) >= BEATS and quiet == [Read(consistent=False, whole=False)] * len(quiet)
    assert cancelled and Read(consistent=False, whole=True) in after


async def test_a_leased_workers_heartbeat_sees_a_takeover_and_stops(dynamodb: Any) -> None:
    """Another worker holds the run now (its lease had expired): this one stops before it writes again."""
    takeover = {"lease_owner": "worker-2", "lease_expires_at": time.time() + 30}
    lease = Lease(owner="worker-1", ttl_s=30.0, heartbeat_s=0.01)
    quiet, after, stopped, lost = await watched(dynamodb, lease, takeover)
    assert quiet == [Read(consistent=False, whole=False)] * len(quiet) and all(not r.consistent for r in after)
    assert stopped and lost
