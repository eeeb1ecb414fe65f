"""The run log: gapless numbering, coalesced durable writes, live readers, `[DONE]` last.

A run no client can resume (`background=false`) sends frames as emitted and stores a step at a
time, and a reader of a writer abandoned mid-run never follows a renumbering."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from chorus.runs.following import follow
from chorus.runs.frames import DONE_FRAME, PING_FRAME, frame
from chorus.runs.log import RunLog
from chorus.runs.tailer import tail_memory, tail_store
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


async def test_numbers_gapless_and_coalesces_writes(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-1", flush_events=64, flush_interval_s=60)
    log.start()
    for i in range(600):
        log.emit(chunk(i))
    await log.close()
    assert log.last_seq == 601 and log.frames[-1] == DONE_FRAME
    assert [e["seq_id"] for e in log.events] == list(range(1, 601))
    assert len(store.appends) <= 600 // 64 + 2, store.appends
    assert sum(store.appends) == 601
    rows = await store.read_events("t", "run-1", 0, 10_000)
    assert [seq for seq, _ in rows] == list(range(1, 602))
    assert rows[-1][1] == "[DONE]"


async def test_interval_flush_makes_slow_events_durable_without_close(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-2", flush_events=1000, flush_interval_s=0.01)
    log.start()
    log.emit(chunk(0))
    for _ in range(200):
        if store.appends:
            break
        await asyncio.sleep(0.01)
    assert store.appends == [1]
    await log.close()


async def test_filtered_types_get_no_number(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-3", include_types=frozenset({"reasoning_message"}))
    log.start()
    log.emit(chunk(0))
    log.emit({"message_type": "reasoning_message", "id": "m", "reasoning": "r", "seq_id": None})
    log.emit({"message_type": "stop_reason", "stop_reason": "end_turn"})
    await log.close()
    assert [(e["message_type"], e["seq_id"]) for e in log.events] == [("reasoning_message", 1), ("stop_reason", 2)]


async def test_live_and_store_readers_see_identical_frames(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-4", flush_events=7, flush_interval_s=60)
    log.start()

    async def read_live(after: int) -> bytes:
        return b"".join([part async for part in tail_memory(log, after, None)])

    readers = [asyncio.create_task(read_live(after)) for after in (0, 0, 5)]
    for i in range(50):
        log.emit(chunk(i))
        await asyncio.sleep(0)
    log.emit({"message_type": "stop_reason", "stop_reason": "end_turn"})
    await log.close()
    live = [await r for r in readers]
    assert live[0] == live[1] == b"".join(log.frames)
    assert live[2] == b"".join(log.frames[5:])
    for after in (0, 5, 50, 51):
        stored = b"".join(
            [
                p
                async for p in tail_store(
                    store, "t", "run-4", after, batch_size=8, poll_interval=0.01, ping_interval=None
                )
            ]
        )
        assert stored == b"".join(log.frames[after:])


async def test_emit_after_close_is_refused(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-5")
    log.start()
    await log.close()
    with pytest.raises(RuntimeError):
        log.emit(chunk(0))


async def test_live_reader_pings_while_waiting(store: CountingStore) -> None:
    log = RunLog(store, "t", "run-6")
    log.start()
    reader = tail_memory(log, 0, 0.01)
    assert await reader.__anext__() == PING_FRAME
    log.emit(chunk(0))
    assert (await reader.__anext__()).startswith(b"id: 1\ndata: ")
    await log.close()
    assert await reader.__anext__() == DONE_FRAME


def test_frames() -> None:
    assert frame(3, b'{"a":1}') == b'id: 3\ndata: {"a":1}\n\n'
    assert frame(4, b'{"message_type":"error_message","x":1}').startswith(b"event: error\nid: 4\ndata: ")
    assert frame(5, b"[DONE]") == b"data: [DONE]\n\n"


class GatedStore(CountingStore):
    """Log writes wait for the test to open the gate (a slow store, or a worker about to die)."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        await self.gate.wait()
        await super().append_events(tenant_id, run_id, first_seq, events)


async def test_a_live_reader_is_sent_only_what_is_stored() -> None:
    """A frame sent before it is stored could die with its worker, and the worker that adopts the run
    would number other events the same (invariant 1): live readers wait for the write."""
    store = GatedStore()
    await store.open()
    log = RunLog(store, "t", "run-d", flush_events=4, flush_interval_s=60)
    log.start()
    reader = tail_memory(log, 0, None)
    first = asyncio.ensure_future(anext(reader))
    for i in range(3):
        log.emit(chunk(i))
    await asyncio.sleep(0.02)
    assert not first.done(), "a frame reached a reader before the store had it"
    assert store.appends == [] and log.durable_frames == 0
    store.gate.set()
    sent = await asyncio.wait_for(first, 1)
    assert sent.startswith(b"id: 1\n") and log.durable_frames >= 1
    await log.close()
    rest = b"".join([part async for part in reader])
    assert (sent + rest).count(b"id: ") == 3 and rest.endswith(DONE_FRAME)
    await store.close()


async def test_an_idle_log_writes_its_first_event_at_once(store: CountingStore) -> None:
    """Durable-before-sent costs no time to first byte: after an idle interval the flusher does not wait."""
    log = RunLog(store, "t", "run-e", flush_events=64, flush_interval_s=60)
    log.start()
    log.emit(chunk(0))
    await asyncio.wait_for(log.wait_beyond(0), 1)
    assert store.appends == [1]
    log.emit(chunk(1))
    await asyncio.sleep(0.02)
    assert store.appends == [1], "within the interval, events wait to be coalesced"
    await log.close()
    assert store.appends == [1, 2]


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


async def test_a_foreground_readers_done_waits_for_the_write_that_ends_the_run() -> None:
    """A client that read a whole foreground stream and then asks for the run must find it ended:
    every frame but `[DONE]` is sent as emitted, and `[DONE]` only once `end_log` has stored it."""
    store = GatedStore()
    await store.open()
    log = RunLog(store, "t", "run-f", flush_events=64, flush_interval_s=60, resumable=False)
    log.start()
    frames = tail_memory(log, 0, None)
    log.emit(chunk(0))
    sent = await asyncio.wait_for(anext(frames), 1)
    closing = asyncio.ensure_future(log.close())
    await asyncio.sleep(0.02)
    assert sent.startswith(b"id: 1\n") and log.live_frames == 1, "[DONE] was sent before it was stored"
    store.gate.set()
    await asyncio.wait_for(closing, 1)
    rest = b"".join([part async for part in frames])
    assert rest == DONE_FRAME and log.durable_frames == 2
    await store.close()
