"""The contract of the `store` port (store/base.py), proven on every adapter.

Each test runs against SQLite and DynamoDB on moto (see conftest.py): same
calls, same answers, including races, page boundaries and 400 KB items.
"""

from __future__ import annotations

import asyncio
import random
import string
import time
from typing import Any

import pytest

from chorus.errors import AlreadyCommitted, Conflict, NotFound
from chorus.runs.ending import ending
from chorus.store.base import LOG_END, Store
from chorus.store.records import (
    AwaitingApproval,
    HeldCall,
    IdempotencyRecord,
    OrchestratedCall,
    Page,
    PendingApproval,
    RunRecord,
    ToolRecord,
)
from support.contract_records import agent, block, group, message, run, step

BIG = 1_200_000
"""Characters of a message well over DynamoDB's 400 KB item limit."""


# resources: agents and groups
@pytest.mark.parametrize("kind", ["agent", "group"])
async def test_put_get_replace_delete(store: Store, kind: str) -> None:
    make, put, get, delete = (
        (agent, store.put_agent, store.get_agent, store.delete_agent)
        if kind == "agent"
        else (group, store.put_group, store.get_group, store.delete_group)
    )
    record: Any = make()
    await put(record)
    assert await get("t1", record.id) == record
    changed = record.model_copy(update={"description": "changed"})
    await put(changed)
    assert await get("t1", record.id) == changed
    with pytest.raises(NotFound, match=f"{kind.title()} not found: {record.id}"):
        await get("t2", record.id)
    with pytest.raises(NotFound):
        await delete("t2", record.id)
    await delete("t1", record.id)
    with pytest.raises(NotFound):
        await get("t1", record.id)
    with pytest.raises(NotFound):
        await delete("t1", record.id)


async def test_large_records_round_trip_intact(store: Store) -> None:
    big = agent(system="x" * BIG)
    await store.put_agent(big)
    assert await store.get_agent("t1", big.id) == big
    small = big.model_copy(update={"system": "short"})
    await store.put_agent(small)
    assert await store.get_agent("t1", big.id) == small
    await store.put_agent(big)
    assert [a.system for a in await store.list_agents("t1", Page())] == [big.system]
    await store.delete_agent("t1", big.id)
    assert await store.list_agents("t1", Page()) == []


def _walk_expected(ids: list[str], page: Page, pos: dict[str, int]) -> list[str]:
    ordered = ids if page.order == "asc" else ids[::-1]
    if page.after is not None:
        ordered = [i for i in ordered if (pos[i] > pos[page.after]) == (page.order == "asc") and i != page.after]
    if page.before is not None:
        ordered = [i for i in ordered if (pos[i] < pos[page.before]) == (page.order == "asc") and i != page.before]
    return ordered[: page.limit]


async def test_listing_order_and_cursors_match_at_every_boundary(store: Store) -> None:
    created = [3, 1, 1, 2, 5, 4, 4]  # ties on created_at are ordered by id
    records = [agent(created=c) for c in created]
    for r in records:
        await store.put_agent(r)
    await store.put_agent(agent("t2"))
    ids = [r.id for r in sorted(records, key=lambda r: (r.created_at, r.id))]
    pos = {i: n for n, i in enumerate(ids)}
    for order in ("asc", "desc"):
        for limit in (1, 2, 3, 7, 8):
            seen: list[str] = []
            cursor = None
            while True:
                page = await store.list_agents("t1", Page(after=cursor, limit=limit, order=order))
                if not page:
                    break
                assert len(page) <= limit
                seen += [a.id for a in page]
                cursor = page[-1].id
            assert seen == (ids if order == "asc" else ids[::-1]), (order, limit)
        for after in [None, *ids]:
            for before in [None, *ids]:
                window = Page(after=after, before=before, limit=3, order=order)
                got = [a.id for a in await store.list_agents("t1", window)]
                assert got == _walk_expected(ids, window, pos), (order, after, before)
    with pytest.raises(NotFound):
        await store.list_agents("t1", Page(after="agent-missing"))
    with pytest.raises(NotFound):
        await store.list_agents("t2", Page(after=ids[0]))


# runs
async def test_update_run_is_a_compare_and_set_on_version(store: Store) -> None:
    r = run()
    await store.put_run(r)
    stored = await store.update_run(r.model_copy(update={"status": "running"}), expect_version=0)
    assert stored.version == 1 and (await store.get_run("t1", r.id)) == stored
    with pytest.raises(Conflict):
        await store.update_run(r.model_copy(update={"status": "failed"}), expect_version=0)
    assert (await store.get_run("t1", r.id)).status == "running"
    with pytest.raises(NotFound):
        await store.update_run(run(id="run-missing"), expect_version=0)
    with pytest.raises(NotFound):
        await store.update_run(stored.model_copy(update={"tenant_id": "t2"}), expect_version=1)
    with pytest.raises(NotFound):
        await store.get_run("t2", r.id)


async def test_run_version_reads_the_version_every_write_increments(store: Store) -> None:
    noise = "".join(random.Random(0).choices(string.ascii_letters, k=BIG))  # kept in parts on DynamoDB
    r = run(inputs=[{"role": "user", "content": noise}])
    await store.put_run(r)
    assert await store.run_version("t1", r.id) == 0 == await store.run_version("t1", r.id, consistent=False)
    updated = await store.update_run(r.model_copy(update={"cancel_requested": True}), expect_version=0)
    assert await store.run_version("t1", r.id) == updated.version == 1
    ended = await store.end_log("t1", r.id, 1, [LOG_END], ending("cancelled", 0))
    assert await store.run_version("t1", r.id) == ended.version == 2
    assert (await store.get_run("t1", r.id, consistent=False)) == ended
    for tenant, run_id in (("t2", r.id), ("t1", "run-missing")):
        with pytest.raises(NotFound):
            await store.run_version(tenant, run_id)


async def test_lease_acquire_renew_expire_and_steal(store: Store) -> None:
    r = run()
    await store.put_run(r)
    now = time.time()
    a = await store.update_run(
        r.model_copy(update={"lease_owner": "A", "lease_expires_at": now + 30}), expect_version=0
    )
    a = await store.update_run(a.model_copy(update={"lease_expires_at": now + 60}), expect_version=a.version)
    seen_by_b = await store.get_run("t1", r.id)
    assert seen_by_b.lease_owner == "A" and seen_by_b.lease_expires_at > time.time()
    expired = await store.update_run(a.model_copy(update={"lease_expires_at": now - 1}), expect_version=a.version)
    stolen = await store.update_run(
        expired.model_copy(update={"lease_owner": "B", "lease_expires_at": now + 30}), expect_version=expired.version
    )
    with pytest.raises(Conflict):  # A renews from what it last saw: its lease is gone
        await store.update_run(a.model_copy(update={"lease_expires_at": now + 90}), expect_version=a.version)
    assert (await store.get_run("t1", r.id)).lease_owner == "B" == stolen.lease_owner


async def test_cancel_flag_survives_a_racing_lease_renewal(store: Store) -> None:
    r = run(status="running")
    await store.put_run(r)
    await store.update_run(r.model_copy(update={"cancel_requested": True}), expect_version=0)
    with pytest.raises(Conflict):
        await store.update_run(r.model_copy(update={"lease_expires_at": time.time() + 30}), expect_version=0)
    assert (await store.get_run("t1", r.id)).cancel_requested


async def test_list_runs_filters(store: Store) -> None:
    runs = [
        run(created=1, group_id="g1", agent_id="a1", status="running", background=True),
        run(created=2, group_id="g1", agent_id="a2", status="completed"),
        run(created=3, group_id="g2", agent_id="a1", status="created", background=True),
        run(created=4, group_id=None, agent_id="a1", status="failed"),
        run("t2", created=5, group_id="g1", agent_id="a1", status="running"),
    ]
    for r in runs:
        await store.put_run(r)

    async def ids(**filters: Any) -> list[str]:
        return [r.id for r in await store.list_runs("t1", Page(order="asc"), **filters)]

    r1, r2, r3, r4, _ = (r.id for r in runs)
    assert await ids() == [r1, r2, r3, r4]
    assert await ids(group_id="g1") == [r1, r2]
    assert await ids(agent_id="a1") == [r1, r3, r4]
    assert await ids(group_id="g1", agent_id="a1") == [r1]
    assert await ids(statuses=["created", "running"]) == [r1, r3]
    assert await ids(statuses=[]) == []
    assert await ids(background=True) == [r1, r3]
    assert await ids(background=False, agent_id="a1") == [r4]
    assert await ids(group_id="g1", statuses=["completed"]) == [r2]
    filtered = await store.list_runs("t1", Page(limit=1, order="desc"), agent_id="a1", background=True)
    assert [r.id for r in filtered] == [r3]
    after = await store.list_runs("t1", Page(limit=1, order="desc", after=r3), agent_id="a1", background=True)
    assert [r.id for r in after] == [r1]


async def test_list_unfinished_runs_spans_tenants_oldest_first(store: Store) -> None:
    a = run("t1", created=3, status="running")
    b = run("t2", created=1, status="created")
    c = run("t1", created=2, status="completed")
    d = run("t2", created=4, status="running")
    for r in (a, b, c, d):
        await store.put_run(r)
    assert [r.id for r in await store.list_unfinished_runs(10)] == [b.id, a.id, d.id]
    assert [r.id for r in await store.list_unfinished_runs(2)] == [b.id, a.id]
    await store.update_run(a.model_copy(update={"status": "cancelled"}), expect_version=0)
    assert [r.id for r in await store.list_unfinished_runs(10)] == [b.id, d.id]
    many = [run(f"t{i % 3}", created=100 + (i * 7) % 30, status="running") for i in range(30)]
    for r in many:
        await store.put_run(r)
    oldest = sorted([b, d, *many], key=lambda r: r.created_at)
    got = await store.list_unfinished_runs(12)
    assert [r.created_at for r in got] == [r.created_at for r in oldest[:12]]
    assert len(await store.list_unfinished_runs(1000)) == 32


async def test_delete_run_takes_its_log_and_steps_but_not_history(store: Store) -> None:
    r = run()
    await store.put_run(r)
    await store.append_events("t1", r.id, 1, ["a", "b"])
    await store.commit_step(step(r, "0001"), [message(r, "0001", 0)])
    with pytest.raises(NotFound):
        await store.delete_run("t2", r.id)
    await store.delete_run("t1", r.id)
    with pytest.raises(NotFound):
        await store.get_run("t1", r.id)
    assert await store.read_events("t1", r.id, 0, 10) == []
    assert await store.last_seq("t1", r.id) == 0
    assert await store.list_steps("t1", r.id) == []
    assert len(await store.list_messages("t1", Page(), group_id="group-1")) == 1
    with pytest.raises(NotFound):
        await store.delete_run("t1", r.id)
    await store.put_run(r)  # the same id may start a fresh log
    await store.append_events("t1", r.id, 1, ["c"])
    assert await store.read_events("t1", r.id, 0, 10) == [(1, "c")]


async def test_a_solo_group_is_read_by_id_but_never_listed(store: Store) -> None:
    listed = [group(created=i) for i in range(3)]
    solo = group(created=1).model_copy(update={"solo_agent_id": "agent-1"})
    for g in [*listed, solo]:
        await store.put_group(g)
    assert await store.get_group("t1", solo.id) == solo
    for order in ("asc", "desc"):
        ids = [g.id for g in await store.list_groups("t1", Page(order=order))]
        assert sorted(ids) == sorted(g.id for g in listed), "the agent's direct conversation is not a listed group"
    second = await store.list_groups("t1", Page(order="asc", after=listed[0].id, limit=1))
    assert [g.id for g in second] == [listed[1].id], "a page is full of listed groups"
    await store.put_group(solo.model_copy(update={"description": "replaced"}))  # replaced: still unlisted
    assert solo.id not in {g.id for g in await store.list_groups("t1", Page())}
    await store.delete_group("t1", solo.id)
    with pytest.raises(NotFound):
        await store.get_group("t1", solo.id)


# one active run per group
async def test_claim_group(store: Store) -> None:
    first, second = run(status="running"), run(status="created")
    for r in (first, second):
        await store.put_run(r)
    assert await store.claim_group("t1", "g1", first.id) is None
    assert await store.claim_group("t1", "g1", first.id) is None
    assert await store.claim_group("t1", "g1", second.id) == first.id
    assert await store.claim_group("t2", "g1", second.id) is None  # another tenant's group of the same id
    await store.release_group("t1", "g1", second.id)  # not the holder: no-op
    assert await store.claim_group("t1", "g1", second.id) == first.id
    await store.release_group("t1", "g1", first.id)
    assert await store.claim_group("t1", "g1", second.id) is None
    await store.update_run(second.model_copy(update={"status": "completed"}), expect_version=0)
    assert await store.claim_group("t1", "g1", first.id) is None  # a terminal holder is replaced
    await store.delete_run("t1", first.id)
    assert await store.claim_group("t1", "g1", second.id) is None  # so is a holder that is gone


async def test_group_queue_is_a_compare_and_set_on_version(store: Store) -> None:
    empty = await store.get_group_queue("t1", "g1")
    assert (empty.next, empty.waiting, empty.version) == (None, [], 0)
    first = await store.put_group_queue(empty.model_copy(update={"waiting": ["run-a"]}), expect_version=0)
    assert first.version == 1
    with pytest.raises(Conflict):
        await store.put_group_queue(empty.model_copy(update={"waiting": ["run-b"]}), expect_version=0)
    second = await store.put_group_queue(first.model_copy(update={"next": "run-c"}), expect_version=1)
    stored = await store.get_group_queue("t1", "g1")
    assert stored == second and (stored.head, stored.waiting, stored.version) == ("run-c", ["run-a"], 2)
    assert (await store.get_group_queue("t2", "g1")).version == 0  # another tenant's group of the same id
    assert (await store.get_group_queue("t1", "g2")).waiting == []


async def test_racing_queue_writers_lose_no_run(store: Store) -> None:
    async def join(run_id: str) -> None:
        while True:
            line = await store.get_group_queue("t1", "g1")
            try:
                await store.put_group_queue(
                    line.model_copy(update={"waiting": [*line.waiting, run_id]}), expect_version=line.version
                )
                return
            except Conflict:
                continue

    ids = [f"run-{i}" for i in range(12)]
    await asyncio.gather(*(join(i) for i in ids))
    line = await store.get_group_queue("t1", "g1")
    assert sorted(line.waiting) == sorted(ids) and line.version == len(ids)


async def test_delete_run_messages_takes_one_runs_messages_only(store: Store) -> None:
    kept, dropped = run(), run()
    for r in (kept, dropped):
        await store.put_run(r)
    await store.commit_step(step(kept, "00000"), [message(kept, "00000", 0, position=1)])
    big = "x" * 500_000  # a message stored in parts goes whole
    await store.commit_step(
        step(dropped, "00000"), [message(dropped, "00000", i, position=2 + i, text=big) for i in range(2)]
    )
    foreign = dropped.model_copy(update={"tenant_id": "t2"})
    await store.put_run(foreign)
    await store.commit_step(step(foreign, "00000"), [message(foreign, "00000", 0, position=9)])
    assert await store.delete_run_messages("t1", dropped.id) == 2
    assert await store.delete_run_messages("t1", dropped.id) == 0
    left = await store.list_messages("t1", Page(order="asc"), group_id="group-1")
    assert [m.run_id for m in left] == [kept.id]
    assert len(await store.list_messages("t2", Page(), run_id=dropped.id)) == 1


async def test_run_slots(store: Store) -> None:
    a, b, c, d = (run(status="running") for _ in range(4))
    other = run(status="running").model_copy(update={"tenant_id": "t2"})
    for r in (a, b, c, d, other):
        await store.put_run(r)
    assert await store.claim_run_slot("t1", a.id, 2)
    assert await store.claim_run_slot("t1", a.id, 2), "claiming again keeps the same slot"
    assert await store.claim_run_slot("t1", b.id, 2)
    assert not await store.claim_run_slot("t1", c.id, 2), "both slots are held by live runs"
    assert await store.claim_run_slot("t2", other.id, 2), "another tenant has its own slots"
    await store.update_run(a.model_copy(update={"status": "completed"}), expect_version=0)
    assert await store.claim_run_slot("t1", c.id, 2), "a terminal run's slot is free"
    assert not await store.claim_run_slot("t1", d.id, 2)
    await store.delete_run("t1", b.id)
    assert await store.claim_run_slot("t1", d.id, 2), "so is the slot of a run that is gone"
    assert await store.claim_run_slot("t1", a.id, 3) is True  # a larger limit has room again


async def test_racing_run_slot_claims_respect_the_limit(store: Store) -> None:
    runs = [run(status="created") for _ in range(10)]
    for r in runs:
        await store.put_run(r)
    results = await asyncio.gather(*(store.claim_run_slot("t1", r.id, 3) for r in runs))
    assert results.count(True) == 3


# idempotency keys
async def test_idempotency_keys(store: Store) -> None:
    def record(run_id: str, expires: float = 60, key: str = "k") -> IdempotencyRecord:
        return IdempotencyRecord(
            tenant_id="t1", key=key, fingerprint="f", run_id=run_id, expires_at=time.time() + expires
        )

    first = record("run-a")
    assert await store.remember_idempotency_key(first) == first
    assert await store.remember_idempotency_key(record("run-b")) == first
    other_tenant = record("run-c").model_copy(update={"tenant_id": "t2"})
    assert await store.remember_idempotency_key(other_tenant) == other_tenant
    await store.forget_idempotency_key("t1", "k", "run-b")  # points elsewhere: kept
    assert await store.remember_idempotency_key(record("run-b")) == first
    await store.forget_idempotency_key("t1", "k", "run-a")
    second = record("run-b")
    assert await store.remember_idempotency_key(second) == second
    stale = record("run-x", expires=-5, key="old")
    await store.remember_idempotency_key(stale)
    fresh = record("run-y", key="old")
    assert await store.remember_idempotency_key(fresh) == fresh, "an expired key is replaced"


# history
async def test_commit_step_once_and_list_steps_in_order(store: Store) -> None:
    r = run()
    await store.put_run(r)
    for key in ("0002", "0001", "0010"):
        await store.commit_step(step(r, key, text=key), [message(r, key, 0, position=int(key))])
    with pytest.raises(AlreadyCommitted):
        await store.commit_step(step(r, "0001", text="again"), [message(r, "0001", 0), message(r, "0001", 1)])
    steps = await store.list_steps("t1", r.id)
    assert [(s.step_key, s.text) for s in steps] == [("0001", "0001"), ("0002", "0002"), ("0010", "0010")]
    assert len(await store.list_messages("t1", Page(), run_id=r.id)) == 3
    assert await store.list_steps("t2", r.id) == []


async def test_list_messages_by_group_or_run_in_position_order(store: Store) -> None:
    r1 = run(group_id="g1")
    r2 = run(group_id="g1")
    r3 = run(group_id="g2")
    for r in (r1, r2, r3):
        await store.put_run(r)
    m = [
        message(r1, "0001", 0, position=5, agent_id=None),
        message(r1, "0001", 1, position=5, agent_id="a1"),
        message(r1, "0002", 0, position=7, agent_id="a2"),
        message(r2, "0001", 0, position=6, agent_id="a1"),
        message(r3, "0001", 0, position=4, agent_id="a1"),
    ]
    await store.commit_step(step(r1, "0001"), m[:2])
    await store.commit_step(step(r1, "0002"), m[2:3])
    await store.commit_step(step(r2, "0001"), m[3:4])
    await store.commit_step(step(r3, "0001"), m[4:])
    other = run("t2", group_id="g1", id=r1.id)  # another tenant's run and group of the same ids
    await store.put_run(other)
    theirs = message(other, "0001", 0, position=1)
    await store.commit_step(step(other, "0001"), [theirs])

    async def ids(tenant: str = "t1", order: str = "asc", after: str | None = None, **scope: Any) -> list[str]:
        page = Page(order=order, limit=10, after=after)
        return [x.id for x in await store.list_messages(tenant, page, **scope)]

    assert await ids(group_id="g1") == [m[0].id, m[1].id, m[3].id, m[2].id]
    assert await ids(order="desc", group_id="g1") == [m[2].id, m[3].id, m[1].id, m[0].id]
    assert await ids(group_id="g2") == [m[4].id]
    assert await ids(run_id=r1.id) == [m[0].id, m[1].id, m[2].id]
    assert await ids(order="desc", run_id=r1.id) == [m[2].id, m[1].id, m[0].id]
    assert await ids(after=m[1].id, group_id="g1") == [m[3].id, m[2].id]
    assert await ids(order="desc", after=m[2].id, run_id=r1.id) == [m[1].id, m[0].id]
    assert await ids("t2", group_id="g1") == await ids("t2", run_id=r1.id) == [theirs.id]
    with pytest.raises(NotFound):
        await ids("t2", after=m[0].id, group_id="g1")
    for unscoped in ({}, {"group_id": "g1", "run_id": r1.id}):
        with pytest.raises(ValueError, match="exactly one"):
            await store.list_messages("t1", Page(), **unscoped)
        with pytest.raises(ValueError, match="exactly one"):
            await store.history_page("t1", Page(), **unscoped)
    assert await store.delete_group_messages("t1", "g1") == 4
    assert await ids(group_id="g1") == await ids(run_id=r1.id) == []
    assert await ids(group_id="g2") == [m[4].id]
    assert await store.delete_group_messages("t1", "g1") == 0
    assert await ids("t2", group_id="g1") == [theirs.id]


async def test_a_message_over_400_kb_round_trips_intact(store: Store) -> None:
    r = run()
    await store.put_run(r)
    image = {"type": "image", "source": {"type": "base64", "data": "iVBOR" + "A" * BIG}}
    big = message(r, "0001", 0, text="é" * (BIG // 2))
    big = big.model_copy(update={"message": {**big.message, "content": [image, {"type": "text", "text": "é" * BIG}]}})
    small = message(r, "0001", 1)
    await store.commit_step(step(r, "0001", text="ü" * BIG), [big, small])
    assert await store.list_messages("t1", Page(order="asc"), run_id=r.id) == [big, small]
    assert (await store.list_steps("t1", r.id))[0].text == "ü" * BIG
    assert await store.delete_group_messages("t1", r.group_id or "") == 2


async def test_a_step_beyond_one_transaction_is_written_whole(store: Store) -> None:
    r = run()
    await store.put_run(r)
    many = [message(r, "0001", i, position=i, text="m" * 2_000) for i in range(130)]
    await store.commit_step(step(r, "0001"), many)
    got = await store.list_messages("t1", Page(order="asc", limit=1000), run_id=r.id)
    assert [x.id for x in got] == [x.id for x in many]
    with pytest.raises(AlreadyCommitted):
        await store.commit_step(step(r, "0001"), many)


# the run event log
async def test_append_is_gapless_and_reads_split_batches(store: Store) -> None:
    r = run()
    assert await store.last_seq("t1", r.id) == 0
    assert await store.read_events("t1", r.id, 0, 10) == []
    with pytest.raises(Conflict):
        await store.append_events("t1", r.id, 2, ["x"])
    await store.append_events("t1", r.id, 1, ["e1", "e2", "e3"])
    await store.append_events("t1", r.id, 4, [])  # nothing to write
    await store.append_events("t1", r.id, 4, ["e4"])
    await store.append_events("t1", r.id, 5, ["e5", "e6"])
    for bad in (1, 4, 6, 8):
        with pytest.raises(Conflict):
            await store.append_events("t1", r.id, bad, ["dup"])
    assert await store.last_seq("t1", r.id) == 6
    everything = [(i, f"e{i}") for i in range(1, 7)]
    for after in range(7):
        for limit in (1, 2, 3, 100):
            got = await store.read_events("t1", r.id, after, limit)
            assert got == everything[after : after + limit], (after, limit)
    assert await store.read_events("t2", r.id, 0, 10) == []
    assert await store.last_seq("t2", r.id) == 0


async def test_a_log_ending_in_done_is_closed_to_every_writer(store: Store) -> None:
    r = run()
    await store.append_events("t1", r.id, 1, ["e1", LOG_END])
    with pytest.raises(Conflict, match="complete"):
        await store.append_events("t1", r.id, 3, ["late"])  # a stale writer, right after the end
    other = run()
    await store.append_events("t1", other.id, 1, ["e1"])
    await store.append_events("t1", other.id, 2, ["e2", "e3"])
    await store.append_events("t1", other.id, 4, [LOG_END])
    for seq in (4, 5):
        with pytest.raises(Conflict):
            await store.append_events("t1", other.id, seq, ["late"])
    assert [e for _, e in await store.read_events("t1", other.id, 0, 10)] == ["e1", "e2", "e3", LOG_END]
    assert await store.last_seq("t1", other.id) == 4


async def test_end_log_completes_the_log_and_ends_the_run_in_one_write(store: Store) -> None:
    r = run(status="running", lease_owner="w1")
    await store.put_run(r)
    assert await store.claim_group("t1", "group-1", r.id) is None
    await store.append_events("t1", r.id, 1, ["e1"])
    flagged = await store.update_run(r.model_copy(update={"cancel_requested": True}), expect_version=0)
    ended = await store.end_log("t1", r.id, 2, ["stop", LOG_END], ending("end_turn", 60, usage={"n": 1}))
    # the ending was applied to the record as stored (its cancel flag kept), one version on
    assert ended.version == flagged.version + 1 and ended.cancel_requested
    assert (ended.status, ended.stop_reason, ended.usage, ended.lease_owner) == (
        "completed",
        "end_turn",
        {"n": 1},
        None,
    )
    assert await store.get_run("t1", r.id) == ended
    assert [e for _, e in await store.read_events("t1", r.id, 0, 10)] == ["e1", "stop", LOG_END]
    assert await store.claim_group("t1", "group-1", "run-next") is None  # the group is free at once


async def test_a_refused_end_log_writes_neither_events_nor_record(store: Store) -> None:
    r = run(status="running")
    await store.put_run(r)
    await store.append_events("t1", r.id, 1, ["e1", "e2"])
    with pytest.raises(Conflict):
        await store.end_log("t1", r.id, 2, ["stop", LOG_END], ending("end_turn", 60))  # seq 2 is taken
    assert (await store.get_run("t1", r.id)) == r
    assert await store.last_seq("t1", r.id) == 2
    with pytest.raises(NotFound):
        await store.end_log("t1", "run-missing", 1, [LOG_END], ending("end_turn", 60))
    assert await store.read_events("t1", "run-missing", 0, 10) == []
    await store.end_log("t1", r.id, 3, [LOG_END], ending("cancelled", 60))
    with pytest.raises(Conflict, match="complete"):  # a second ending, after the first
        await store.end_log("t1", r.id, 4, ["stop", LOG_END], ending("end_turn", 60))
    assert (await store.get_run("t1", r.id)).stop_reason == "cancelled"


async def test_an_end_log_whose_ending_refuses_the_stored_run_writes_nothing(store: Store) -> None:
    """A holder ending its run from its own copy refuses a run changed since (`finish_unchanged`)."""
    r = run(status="running")
    await store.put_run(r)
    await store.append_events("t1", r.id, 1, ["e1"])
    changed = await store.update_run(r.model_copy(update={"cancel_requested": True}), expect_version=0)

    def unless_changed(stored: RunRecord) -> RunRecord:
        if stored.version != r.version:
            raise Conflict("changed")
        return ending("end_turn", 60)(stored)

    with pytest.raises(Conflict, match="changed"):
        await store.end_log("t1", r.id, 2, ["stop", LOG_END], unless_changed)
    assert await store.get_run("t1", r.id) == changed
    assert [e for _, e in await store.read_events("t1", r.id, 0, 10)] == ["e1"]
    await store.end_log("t1", r.id, 2, ["stop", LOG_END], ending("cancelled", 60))  # the log is still open
    assert (await store.get_run("t1", r.id)).stop_reason == "cancelled"


async def test_end_log_of_a_run_already_ended_writes_the_events_only(store: Store) -> None:
    r = run(status="cancelled", stop_reason="cancelled")
    await store.put_run(r)
    stored = await store.end_log("t1", r.id, 1, ["stop", LOG_END], ending("end_turn", 60))
    assert stored == r == await store.get_run("t1", r.id)
    assert await store.last_seq("t1", r.id) == 2


async def test_end_log_of_a_batch_over_a_transaction(store: Store) -> None:
    r = run(status="running")
    await store.put_run(r)
    events = [f'{{"n":{i},"pad":"{"p" * 30_000}"}}' for i in range(200)]
    ended = await store.end_log("t1", r.id, 1, [*events, LOG_END], ending("end_turn", 60))
    assert ended.status == "completed" and await store.get_run("t1", r.id) == ended
    assert [e for _, e in await store.read_events("t1", r.id, 0, 1000)] == [*events, LOG_END]


async def test_racing_end_logs_end_the_run_once(store: Store) -> None:
    r = run(status="running")
    await store.put_run(r)
    stops = ["end_turn", "cancelled", "error", "max_steps"]
    results = await asyncio.gather(
        *(store.end_log("t1", r.id, 1, [s, LOG_END], ending(s, 60)) for s in stops), return_exceptions=True
    )
    winners = [res for res in results if isinstance(res, RunRecord)]
    assert len(winners) == 1 and all(isinstance(res, Conflict) for res in results if res not in winners)
    stored = await store.get_run("t1", r.id)
    assert stored == winners[0] and stored.version == 1
    assert [e for _, e in await store.read_events("t1", r.id, 0, 10)] == [stored.stop_reason, LOG_END]


async def test_events_over_400_kb_and_batches_over_a_transaction(store: Store) -> None:
    r = run()
    huge = '{"message_type":"tool_return_message","tool_return":"' + "z" * BIG + '"}'
    events = [f'{{"n":{i},"pad":"{"p" * 30_000}"}}' for i in range(200)]
    await store.append_events("t1", r.id, 1, ["a", huge, "b"])
    await store.append_events("t1", r.id, 4, events)
    await store.append_events("t1", r.id, 204, [huge])
    got = await store.read_events("t1", r.id, 0, 1000)
    assert got == list(enumerate(["a", huge, "b", *events, huge], start=1))
    assert await store.last_seq("t1", r.id) == 204
    assert await store.read_events("t1", r.id, 2, 1) == [(3, "b")]


# races
async def test_racing_appenders_never_share_or_skip_a_seq_id(store: Store) -> None:
    r = run()

    async def appender(name: str, count: int) -> None:
        for i in range(count):
            while True:
                last = await store.last_seq("t1", r.id)
                try:
                    await store.append_events("t1", r.id, last + 1, [f"{name}-{i}"])
                    break
                except Conflict:
                    continue

    writers = [f"w{k}" for k in range(5)]
    await asyncio.gather(*(appender(w, 10) for w in writers))
    log = await store.read_events("t1", r.id, 0, 1000)
    assert [seq for seq, _ in log] == list(range(1, 51))
    assert sorted(data for _, data in log) == sorted(f"{w}-{i}" for w in writers for i in range(10))
    for w in writers:  # each writer's own events keep its order
        mine = [data for _, data in log if data.startswith(f"{w}-")]
        assert mine == [f"{w}-{i}" for i in range(10)]


async def test_racing_step_commits_write_once(store: Store) -> None:
    r = run()
    await store.put_run(r)
    attempts = [[message(r, "0001", i, text=f"attempt {a}") for i in range(3)] for a in range(8)]
    results = await asyncio.gather(
        *(store.commit_step(step(r, "0001", text=str(a)), attempts[a]) for a in range(8)), return_exceptions=True
    )
    winners = [a for a, res in enumerate(results) if res is None]
    assert len(winners) == 1
    assert all(isinstance(res, AlreadyCommitted) for res in results if res is not None)
    stored = await store.list_messages("t1", Page(order="asc"), run_id=r.id)
    assert [x.id for x in stored] == [x.id for x in attempts[winners[0]]]
    assert [s.text for s in await store.list_steps("t1", r.id)] == [str(winners[0])]


async def test_racing_compare_and_sets_have_one_winner(store: Store) -> None:
    r = run()
    await store.put_run(r)
    results = await asyncio.gather(
        *(store.update_run(r.model_copy(update={"lease_owner": f"w{i}"}), expect_version=0) for i in range(8)),
        return_exceptions=True,
    )
    winners = [res for res in results if isinstance(res, RunRecord)]
    assert len(winners) == 1
    assert all(isinstance(res, Conflict) for res in results if not isinstance(res, RunRecord))
    assert (await store.get_run("t1", r.id)) == winners[0]


async def test_racing_claims_leave_one_holder(store: Store) -> None:
    runs = [run(status="running") for _ in range(8)]
    for r in runs:
        await store.put_run(r)
    results = await asyncio.gather(*(store.claim_group("t1", "g1", r.id) for r in runs))
    winners = [r.id for r, res in zip(runs, results, strict=True) if res is None]
    assert len(winners) == 1
    assert all(res == winners[0] for res in results if res is not None)


async def test_racing_idempotency_keys_keep_the_first(store: Store) -> None:
    records = [
        IdempotencyRecord(tenant_id="t1", key="k", fingerprint="f", run_id=f"run-{i}", expires_at=time.time() + 60)
        for i in range(8)
    ]
    results = await asyncio.gather(*(store.remember_idempotency_key(rec) for rec in records))
    assert len({res.run_id for res in results}) == 1
    assert results[0] in records


# memory blocks
async def test_blocks_put_get_list_by_label_and_delete(store: Store) -> None:
    first, second = block(created=1, label="human"), block(created=2, label="persona", value="x" * BIG)
    for b in (first, second):
        await store.put_block(b)
    assert await store.get_block("t1", second.id) == second
    assert [b.id for b in await store.list_blocks("t1", Page(order="asc"))] == [first.id, second.id]
    assert [b.id for b in await store.list_blocks("t1", Page(), label="persona")] == [second.id]
    assert await store.list_blocks("t2", Page()) == []
    with pytest.raises(NotFound, match=f"Block not found: {first.id}"):
        await store.get_block("t2", first.id)
    await store.delete_block("t1", first.id)
    with pytest.raises(NotFound):
        await store.delete_block("t1", first.id)


async def test_update_block_is_a_compare_and_set_on_version(store: Store) -> None:
    original = block(value="a")
    await store.put_block(original)
    stored = await store.update_block(original.model_copy(update={"value": "b"}), expect_version=0)
    assert stored.version == 1 and (await store.get_block("t1", original.id)).value == "b"
    with pytest.raises(Conflict):
        await store.update_block(original.model_copy(update={"value": "c"}), expect_version=0)
    assert (await store.get_block("t1", original.id)).value == "b"
    with pytest.raises(NotFound):
        await store.update_block(block(), expect_version=0)


async def test_racing_block_edits_have_one_winner_each_round(store: Store) -> None:
    """Ten editors append to one block at once, each retrying on conflict: no edit is lost."""
    shared = block(value="")
    await store.put_block(shared)

    async def append(i: int) -> None:
        while True:
            current = await store.get_block("t1", shared.id)
            try:
                await store.update_block(
                    current.model_copy(update={"value": current.value + f"[{i}]"}), expect_version=current.version
                )
                return
            except Conflict:
                await asyncio.sleep(0)

    await asyncio.gather(*(append(i) for i in range(10)))
    final = await store.get_block("t1", shared.id)
    assert final.version == 10 and sorted(final.value.strip("[]").split("][")) == sorted(str(i) for i in range(10))


# batch reads: one listing reads every related block or tool at once
async def test_get_blocks_keeps_order_and_leaves_out_missing_and_foreign_ids(store: Store) -> None:
    mine = [block(value=f"v{i}") for i in range(3)]
    big = block(value="x" * BIG)
    foreign = block("t2")
    for b in (*mine, big, foreign):
        await store.put_block(b)
    asked = [mine[2].id, "block-missing", big.id, foreign.id, mine[0].id, mine[2].id]
    assert await store.get_blocks("t1", asked) == [mine[2], big, mine[0]]
    assert await store.get_blocks("t1", []) == []
    assert await store.get_blocks("t2", [b.id for b in mine]) == []


async def test_get_blocks_and_tools_beyond_one_batch_request(store: Store) -> None:
    blocks = [block(created=i) for i in range(130)]
    tools = [_tool(f"tool_{i}") for i in range(130)]
    for b, t in zip(blocks, tools, strict=True):
        await store.put_block(b)
        await store.put_tool(t)
    ids = [b.id for b in reversed(blocks)]
    assert [b.id for b in await store.get_blocks("t1", ids)] == ids
    missing = [f"block-missing-{i}" for i in range(1_000)]  # beyond SQLite's bound variables in one query
    assert await store.get_blocks("t1", [*missing[:500], blocks[0].id, *missing[500:]]) == [blocks[0]]
    tool_ids = [t.id for t in tools[::2]] + ["tool-missing"]
    assert await store.get_tools("t1", tool_ids) == tools[::2]
    assert await store.get_tools("t2", tool_ids) == []


def _tool(name: str) -> ToolRecord:
    return ToolRecord(
        tenant_id="t1",
        id=f"tool-{name}",
        created_at="2025-01-01T00:00:00+00:00",
        updated_at="2025-01-01T00:00:00+00:00",
        name=name,
        source_code=f"def {name}() -> str:\n    return 'x'\n",
        json_schema={"name": name},
    )


async def test_typed_waits_and_approvals_round_trip(store: Store) -> None:
    held = HeldCall(tool_call_id="call-1", name="delete_file", arguments='{"path": "a.txt"}')
    paused = group().model_copy(
        update={"pending_approval": PendingApproval(run_id="run-1", agent_id="agent-1", tool_calls=[held], round=1)}
    )
    await store.put_group(paused)
    assert await store.get_group("t1", paused.id) == paused
    r = run()
    await store.put_run(r)
    waits = [AwaitingApproval(approval=[held]), OrchestratedCall(tool_call_id="call-2", name="b", arguments={"m": 1})]
    for i, wait in enumerate(waits):
        await store.commit_step(step(r, f"000{i}", pending=wait), [])
    assert [s.pending for s in await store.list_steps("t1", r.id)] == waits
