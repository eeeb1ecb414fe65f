"""The log of a run no client can resume (`background=false`): frames go out as emitted, the store
is written a step at a time, and a reader of a writer abandoned mid-run never follows a renumbering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from chorus.runs.following import follow
from chorus.runs.frames import DONE_FRAME
from chorus.runs.log import RunLog
from chorus.store.sqlite import SQLiteStore


class CountingStore(SQLiteStore):
    """The real SQLite adapter, counting log writes (a spy, not a fake)."""

    def __init__(self) -> None:
        super().__init__(":memory:")
        self.appends: list[int] = []

    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        self.appends.append(len(events))
        await super().append_events(tenant_id, run_id, first_seq, events)


@pytest.fixture
async def store() -> AsyncIterator[CountingStore]:
    s = CountingStore()
    await s.open()
    yield s
    await s.close()


def chunk(i: int, message: str = "message-1") -> dict[str, Any]:
    return {"message_type": "assistant_message", "id": message, "content": f" tok{i}", "seq_id": None}


def reader(store: CountingStore, log: RunLog, after: int = 0) -> AsyncIterator[bytes]:
    return follow(store, log, "t", log.run_id, after, ping_interval=None, poll_interval=0.01, batch_size=100)


async def test_frames_are_sent_as_emitted_and_stored_a_batch_or_a_step_at_a_time(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-a", flush_events=64, flush_interval_s=0.001, resumable=False)
    log.start()
    frames = reader(store, log)
    for i in range(10):
        log.emit(chunk(i))
    sent = await asyncio.wait_for(anext(frames), 1)
    assert sent.count(b"id: ") == 10, "a live reader waited for the store"
    await asyncio.sleep(0.05)
    assert store.appends == [], "no write on a timer: the log is written when a step commits"
    await log.flush()
    assert store.appends == [10]
    for i in range(64):
        log.emit(chunk(i, "message-2"))
    for _ in range(100):
        if len(store.appends) == 2:
            break
        await asyncio.sleep(0.01)
    assert store.appends == [10, 64], "a full batch is written without waiting for the step"
    await log.close()
    rest = b"".join([part async for part in frames])
    assert rest.endswith(DONE_FRAME) and (sent + rest).count(b"id: ") == 74
    rows = await store.read_events("t", "run-a", 0, 1000)
    assert [seq for seq, _ in rows] == list(range(1, 76)) and rows[-1][1] == "[DONE]"


async def test_a_resumable_log_still_sends_only_what_is_stored(store: CountingStore) -> None:
    """The default: a background run's reader waits for the write (invariant 1)."""
    log = RunLog(store, "t", "run-b", flush_events=64, flush_interval_s=60)
    log.start()
    log.emit(chunk(0))
    assert log.live_frames == 0
    await asyncio.wait_for(log.wait_beyond(0), 1)
    assert log.live_frames == 1 == log.durable_frames
    await log.close()


async def test_a_reader_of_an_abandoned_resumable_log_goes_on_from_the_store(store: CountingStore) -> None:
    """The worker lost its lease: its reader was sent only stored frames, and follows the new writer there."""
    log = RunLog(store, "t", "run-c", flush_events=64, flush_interval_s=60)
    log.start()
    frames = reader(store, log)
    log.emit(chunk(0))
    first = await asyncio.wait_for(anext(frames), 1)
    await log.abort()
    adopter = RunLog(store, "t", "run-c", base_seq=1, flush_events=64, flush_interval_s=60)
    adopter.start()
    adopter.emit(chunk(1, "message-9"))
    await adopter.close()
    rest = b"".join([part async for part in frames])
    assert first.startswith(b"id: 1\n") and b"id: 2\n" in rest and b"message-9" in rest
    assert rest.endswith(DONE_FRAME) and b"event: error" not in rest


async def test_a_reader_sent_unstored_frames_of_an_abandoned_log_ends_with_an_error(store: CountingStore) -> None:
    """The new writer numbers its events after the last *stored* one: a reader that was sent more
    must not be handed them under numbers it already saw with other content."""
    log = RunLog(store, "t", "run-d", flush_events=64, flush_interval_s=60, resumable=False)
    log.start()
    frames = reader(store, log)
    log.emit(chunk(0))
    await log.flush()
    log.emit(chunk(1))  # sent, never stored
    sent = b""
    while sent.count(b"id: ") < 2:
        sent += await asyncio.wait_for(anext(frames), 1)
    await log.abort()
    adopter = RunLog(store, "t", "run-d", base_seq=1, flush_events=64, flush_interval_s=60, resumable=False)
    adopter.start()
    adopter.emit(chunk(1, "message-9"))
    await adopter.close()
    rest = b"".join([part async for part in frames])
    assert b"message-9" not in rest and b"id: " not in rest
    error_block, done = rest.split(b"\n\n")[:2]
    assert error_block.startswith(b"event: error\ndata: ") and done + b"\n\n" == DONE_FRAME
    error = orjson.loads(error_block.removeprefix(b"event: error\ndata: "))
    assert error["message_type"] == "error_message" and error["run_id"] == "run-d"
