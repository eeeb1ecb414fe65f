"""Double-texting under crashes and races, on SQLite and DynamoDB (moto).

A worker dies (its store raises `Crash`, which no `except Exception` catches) at the worst
moment of a hand-over: after the interrupted run has ended and before the waiting run has the
group; a second worker on the same store then runs its recovery sweep and must start the
waiting run, exactly once, over the right history. Races send several double-texts at once
through two workers sharing one store: never two runs of the group at once, every enqueued
run completes, history reads run after run.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from chorus.runs.service import RunService
from chorus.schemas.requests import MessageRequest
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, Page, RunRecord
from chorus.store.sqlite import SQLiteStore
from support.crashes import NOW, TENANT, Crash, CrashingStore, Switch
from support.dynamodb import dynamodb_store, moto_dynamodb
from support.gate import Gate

SETTLE_S = 30.0
GROUP = "group-00000000-0000-4000-8000-000000000001"
AGENT = "agent-00000000-0000-4000-8000-000000000002"


@pytest.fixture(params=["sqlite", "dynamodb"])
def stores(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A factory of store instances over one database: each worker gets its own, as a process would."""
    if request.param == "sqlite":
        yield lambda: SQLiteStore(tmp_path / "chorus.db")
        return
    with moto_dynamodb(monkeypatch) as client:
        yield lambda: dynamodb_store(client)


class DiesHandingOver(CrashingStore):
    """Dies at the hand-over: once another run has claimed the group from the interrupted one
    (so that run has ended), before anything starts it."""

    victim: str | None = None

    async def claim_group(self, tenant_id: str, group_id: str, run_id: str) -> str | None:
        holder = await self.inner.claim_group(tenant_id, group_id, run_id)
        if holder is None and self.victim not in (None, run_id):
            self.switch.die()
        return holder


@asynccontextmanager
async def worker(store: Store, gate: Gate, **options: Any) -> AsyncIterator[RunService]:
    await store.open()
    service = RunService(store, Settings(log_flush_interval_s=0.01), resolver=gate, orphan_grace_s=0.0, **options)
    try:
        yield service
    finally:
        await service.shutdown()


async def seed(store: Store) -> None:
    await store.put_agent(
        AgentRecord(tenant_id=TENANT, id=AGENT, created_at=NOW, updated_at=NOW, name="Ada", system="s", model="x/y")
    )
    await store.put_group(
        GroupRecord(
            tenant_id=TENANT,
            id=GROUP,
            created_at=NOW,
            updated_at=NOW,
            agent_ids=[AGENT],
            manager_config={"manager_type": "round_robin"},
        )
    )


async def send(service: RunService, text: str, strategy: str = "reject") -> RunRecord:
    body = MessageRequest.model_validate({"input": text, "background": True, "multitask_strategy": strategy})
    return (await service.start_group_run(TENANT, GROUP, body, streaming=False)).run


async def ended(service: RunService, run: RunRecord) -> RunRecord:
    return await asyncio.wait_for(service.wait_terminal(TENANT, run.id), SETTLE_S)


async def history(store: Store) -> list[tuple[str, str]]:
    records = await store.list_messages(TENANT, Page(order="asc", limit=1000), group_id=GROUP)
    return [(r.run_id, str(r.message.get("content"))) for r in records]


async def die(service: RunService, store: Store) -> None:
    """What a dead worker leaves: nothing more written, its tasks gone, its lease left to expire."""
    for task in list(service.executor._tasks.values()):
        task.cancel()
    await asyncio.gather(*service.executor._tasks.values(), return_exceptions=True)
    await asyncio.gather(*(a.log.abort() for a in service._active.values()), return_exceptions=True)
    await service.recovery.stop_sweeper()
    await store.close()


@pytest.mark.parametrize("strategy", ["interrupt", "rollback"])
async def test_a_crash_between_the_cancel_and_the_start_is_recovered_by_another_worker(
    stores: Any, strategy: str
) -> None:
    switch = Switch()
    inner = stores()
    dying = DiesHandingOver(inner, switch)
    gate = Gate()
    await inner.open()
    await seed(inner)
    service_a = RunService(dying, Settings(log_flush_interval_s=0.01), resolver=gate, orphan_grace_s=0.0)
    active = await send(service_a, "hold 1")
    dying.victim = active.id
    async with asyncio.timeout(SETTLE_S):
        await gate.holding.wait()
    with contextlib.suppress(Crash):  # the interrupted run may end before the send's own look at the line
        await send(service_a, "instead", strategy)
    async with asyncio.timeout(SETTLE_S):
        await switch.died.wait()
    (waiting,) = [r for r in await inner.list_runs(TENANT, Page()) if r.id != active.id]
    await die(service_a, inner)
    survivor = Gate()
    survivor.release()
    async with worker(stores(), survivor) as service_b:
        assert (await service_b.store.get_run(TENANT, active.id)).status == "cancelled"
        assert (await service_b.store.get_run(TENANT, waiting.id)).status == "created"
        assert await service_b.recover() == 1
        done = await ended(service_b, waiting)
        assert done.status == "completed"
        said = await history(service_b.store)
        if strategy == "rollback":
            assert [text for run, text in said] == ["instead", "re: instead"]
            undone = await service_b.store.get_run(TENANT, active.id)
            assert undone.metadata["rolled_back_by"] == waiting.id
        else:
            assert [text for run, text in said] == ["hold 1", "instead", "re: instead"]
        assert (await service_b.store.get_group_queue(TENANT, GROUP)).head is None
        assert await service_b.recover() == 0  # started once


async def died_with_a_line(stores: Any, *waiting: str) -> tuple[RunRecord, list[RunRecord]]:
    """A worker (its lease 0.2 s) that died running "hold 1" with `waiting` enqueued behind it."""
    inner = stores()
    gate = Gate()
    await inner.open()
    await seed(inner)
    service_a = RunService(
        inner, Settings(log_flush_interval_s=0.01), resolver=gate, lease_ttl_s=0.2, orphan_grace_s=0.0
    )
    active = await send(service_a, "hold 1")
    async with asyncio.timeout(SETTLE_S):
        await gate.holding.wait()
    queued = [await send(service_a, text, "enqueue") for text in waiting]
    await die(service_a, inner)
    return active, queued


async def sweep_until_one(service: RunService) -> None:
    """Sweep until the dead worker's lease has expired and the sweep takes up its run."""
    for _ in range(int(SETTLE_S / 0.05)):
        if await service.recover():
            return
        await asyncio.sleep(0.05)


async def test_the_line_outlives_its_worker(stores: Any) -> None:
    active, queued = await died_with_a_line(stores, "then 2", "then 3")
    survivor = Gate()
    survivor.release()
    async with worker(stores(), survivor, lease_ttl_s=0.2) as service_b:
        await sweep_until_one(service_b)
        for run in (active, *queued):
            assert (await ended(service_b, run)).status == "completed"
        assert [text for _, text in await history(service_b.store)] == [
            "hold 1", "re: hold 1", "then 2", "re: then 2", "then 3", "re: then 3",
        ]  # fmt: skip
        assert survivor.most_at_once == 1


async def test_double_texts_racing_through_two_workers_never_overlap(stores: Any) -> None:
    gate = Gate()
    async with worker(stores(), gate) as service_a, worker(stores(), gate) as service_b:
        await seed(service_a.store)
        first = await send(service_a, "hold 0")
        async with asyncio.timeout(SETTLE_S):
            await gate.holding.wait()
        strategies = ["enqueue", "interrupt", "enqueue", "rollback", "enqueue", "enqueue"]
        services = [service_a, service_b]
        sent = await asyncio.gather(*(send(services[i % 2], f"text {i}", s) for i, s in enumerate(strategies, start=1)))
        gate.release()
        for run in [first, *sent]:
            await ended(service_a, run)
            await ended(service_b, run)  # both workers agree it ended (each hands the group on)
        assert gate.most_at_once == 1
        runs = {r.id: await service_a.store.get_run(TENANT, r.id) for r in [first, *sent]}
        enqueued = [r.id for r, s in zip(sent, strategies, strict=True) if s == "enqueue"]
        assert all(runs[i].status == "completed" for i in enqueued)
        order = [run for run, _ in await history(service_a.store)]
        assert order == sorted(order, key=order.index)  # each run's messages side by side
        assert (await service_a.store.get_group_queue(TENANT, GROUP)).head is None


async def test_a_run_the_sweep_ends_hands_its_group_on_in_the_same_sweep(stores: Any) -> None:
    """The run's worker died after completing its log (so the sweep only ends its record): the run
    waiting behind it starts in that same sweep, not a sweep later once it is old enough."""
    active, (queued,) = await died_with_a_line(stores, "then 2")
    store = stores()
    await store.open()
    last = await store.last_seq(TENANT, active.id)
    await store.append_events(TENANT, active.id, last + 1, ['{"message_type":"stop_reason","stop_reason":"end_turn"}'])
    await store.append_events(TENANT, active.id, last + 2, ["[DONE]"])
    await store.close()
    survivor = Gate()
    survivor.release()
    async with worker(stores(), survivor) as service_b:
        service_b.recovery.orphan_grace_s = 3600.0  # the sweep would not revive the line on its own
        await sweep_until_one(service_b)
        assert (await service_b.store.get_run(TENANT, active.id)).status == "completed"
        assert (await ended(service_b, queued)).status == "completed"
        assert [text for _, text in await history(service_b.store)][-2:] == ["then 2", "re: then 2"]
