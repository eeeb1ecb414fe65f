"""Invariant 5 on the SQLite store: the event loop does SQLite's CPU work but never waits on it.

Calls run on the loop's own connection (a thread hop cost more than the work,
see `SQLiteCore._call` in `store/sqlite_core.py`); a call that would wait for another connection's
write lock moves to the worker thread, and the loop's connections never
checkpoint. Each test fails when that breaks: a loop connection that waited
for the lock would stall the coroutine that releases it (and time out), one
that gave up would raise, and one that never checkpointed would grow the WAL
without bound.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

from chorus.store.records import RunRecord
from chorus.store.sqlite import CHECKPOINT_EVERY, SQLiteStore


def run(**fields: Any) -> RunRecord:
    return RunRecord(tenant_id="t1", id="run-1", created_at="2026-11-25T08:00:00+00:00", agent_id="agent-1", **fields)


async def test_a_write_meeting_another_writers_lock_waits_off_the_loop(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    r = run(status="running")
    await store.put_run(r)
    other = sqlite3.connect(tmp_path / "chorus.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    ticks = 0
    released = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not released.is_set():
            ticks += 1
            if ticks == 20:  # the loop kept running while the write waited: let it through
                other.execute("COMMIT")
                released.set()
            await asyncio.sleep(0.001)

    write = asyncio.create_task(store.update_run(r.model_copy(update={"status": "completed"}), expect_version=0))
    await asyncio.gather(write, ticker())
    assert ticks == 20
    assert (await store.get_run("t1", r.id)).status == "completed"
    # the loop's connection gives up on a lock at once (it never sleeps in SQLite's busy handler)
    assert store._db.execute("PRAGMA busy_timeout").fetchone() == (0,)
    other.close()
    await store.close()


async def test_reads_and_writes_run_on_the_loop_thread_when_nothing_holds_a_lock(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    threads: set[int] = set()
    original = store._put_sync

    def put(*args: object) -> None:
        threads.add(threading.get_ident())
        original(*args)  # type: ignore[arg-type]

    store._put_sync = put  # type: ignore[method-assign,assignment]
    await store.put_run(run())
    assert threads == {threading.get_ident()}
    await store.close()


async def test_the_wal_is_checkpointed_off_the_loop(tmp_path: Path) -> None:
    """The loop's connections never checkpoint; the worker does, every CHECKPOINT_EVERY calls, so
    what was written reaches the database file (and the WAL is reused instead of growing)."""
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    database = tmp_path / "chorus.db"
    empty = database.stat().st_size
    r = run()
    payload = "x" * 4000
    for i in range(1, 2 * CHECKPOINT_EVERY + 1):
        await store.append_events("t1", r.id, i, [payload])
    assert store._checkpoint is not None
    await asyncio.wrap_future(store._checkpoint)
    # the first CHECKPOINT_EVERY appends at least (~4 KB each) are in the database file, not only in the WAL
    assert database.stat().st_size - empty > CHECKPOINT_EVERY * 4000
    loop_connection = store._db
    assert loop_connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    await store.close()
