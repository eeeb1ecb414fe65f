"""The group's line (`chorus.runs.queue`) on the real SQLite adapter: joining, displacing, serving."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chorus.runs.queue import LineFull, join, leave, promote
from chorus.store.records import RunRecord
from chorus.store.sqlite import SQLiteStore

NOW = "2026-11-25T08:00:00+00:00"


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    the_store = SQLiteStore(tmp_path / "chorus.db")
    await the_store.open()
    yield the_store
    await the_store.close()


async def stored(store: SQLiteStore, run_id: str, status: str = "created") -> RunRecord:
    run = RunRecord(tenant_id="t1", id=run_id, created_at=NOW, agent_id="a", group_id="g", status=status)
    await store.put_run(run)
    return run


async def test_enqueued_runs_keep_arrival_order_and_an_interrupter_goes_first(store: SQLiteStore) -> None:
    a, b, c = [await stored(store, i) for i in ("run-a", "run-b", "run-c")]
    assert await join(store, a, front=False) is None
    assert await join(store, b, front=False) is None
    assert await join(store, a, front=False) is None  # joining twice changes nothing
    assert await join(store, c, front=True) is None
    line = await store.get_group_queue("t1", "g")
    assert (line.head, line.next, line.waiting) == ("run-c", "run-c", ["run-a", "run-b"])
    d = await stored(store, "run-d")
    assert await join(store, d, front=True) == "run-c"  # the later interrupter displaces the earlier
    await leave(store, "t1", "g", "run-b")
    line = await store.get_group_queue("t1", "g")
    assert (line.next, line.waiting) == ("run-d", ["run-a"])


async def test_promote_waits_for_a_live_holder_and_skips_heads_that_ended_or_went(
    store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    holder = await stored(store, "run-h", status="running")
    assert await store.claim_group("t1", "g", holder.id) is None
    gone, ended, waiting = [await stored(store, i) for i in ("run-gone", "run-ended", "run-w")]
    for run in (gone, ended, waiting):
        await join(store, run, front=False)
    await store.delete_run("t1", gone.id)
    await store.update_run(ended.model_copy(update={"status": "cancelled"}), expect_version=0)
    assert await promote(store, "t1", "g") is None  # the holder is live: nobody is served
    await store.update_run(holder.model_copy(update={"status": "completed"}), expect_version=0)
    served = await promote(store, "t1", "g")
    assert served is not None and served.id == waiting.id
    assert await store.claim_group("t1", "g", "run-other") == waiting.id  # it holds the group now
    assert (await store.get_group_queue("t1", "g")).head is None
    monkeypatch.setattr("chorus.runs.queue.MAX_WAITING_RUNS", 1)
    await join(store, await stored(store, "run-x"), front=False)
    with pytest.raises(LineFull):
        await join(store, await stored(store, "run-y"), front=False)
