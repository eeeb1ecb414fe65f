"""The run event log: one writer per run, gapless `seq_id`, coalesced durable writes.

`RunLog.emit` is the only way an event leaves a run. It numbers the event
(1..N, one total order), serialises it once, keeps the SSE frame in memory
for live readers in this process, and queues the JSON for the store. A
flusher task writes queued events as one log record every
`flush_events` events or `flush_interval_s` seconds, whichever comes first,
so a 600-token run costs a handful of writes, not 600 (what clients see is
unchanged: readers here take frames from memory, readers elsewhere poll
the store). `close()` flushes everything and appends the `[DONE]` sentinel
last, so a log that ends in `[DONE]` is complete wherever it is read; given
the run's ending, the same write ends the run record (`Store.end_log`).

Live readers of a *resumable* run (`background=true`) are handed only
durable frames (`live_frames`). A frame sent before it was written could die
with its worker, and the worker that adopts the run numbers its own events
after the last *stored* `seq_id`: a client that had been sent the lost frames
would resume after them and skip, or be sent different events under, the
same numbers (invariant 1; found by the fault campaign,
`tests/faults/test_campaign.py`). So that this costs no time to first byte,
the flusher writes at once when the log has been idle for `flush_interval_s`,
and otherwise every `flush_events` events or `flush_interval_s`, as before: a
token reaches a live reader at most one interval plus one store write after
it was emitted.

A run no client can resume (`background=false`: the resume route answers 400
for it, as Letta's does) has nobody to keep that promise to, so its live
readers are handed every frame as it is emitted, and its log is written only
every `flush_events` events, before each step commits (`flush`) and at
`close`: a 3-agent foreground run is 4 or 5 log writes instead of one per
token, and its tokens never wait on the store. The stored log still ends
gapless in `[DONE]`, for an `Idempotency-Key` replay and the run viewer,
which see it a step at a time while it runs. Its `[DONE]` alone is held
until stored, since that write also ends the run record. If such a writer is abandoned
(its lease lost to another worker) after sending frames it never stored, its
readers end with an error rather than follow the new worker's numbering
(`following.py`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import orjson

from chorus.engine.events import MESSAGE_TYPES, Event
from chorus.runs.frames import DONE, frame
from chorus.runs.options import RunOptions
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import RunRecord

logger = logging.getLogger(__name__)


class RunLog:
    def __init__(
        self,
        store: Store,
        tenant_id: str,
        run_id: str,
        *,
        include_types: frozenset[str] | None = None,
        flush_events: int = 64,
        flush_interval_s: float = 0.05,
        base_seq: int = 0,
        resumable: bool = True,
    ) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.run_id = run_id
        self._include = include_types
        self._flush_events = flush_events
        self._flush_interval = flush_interval_s
        self.base_seq = base_seq
        """Events already in the store when this writer took over (a recovered run)."""
        self.resumable = resumable
        """Live readers wait for the store (a run clients may resume), or are sent frames as emitted."""
        self.frames: list[bytes] = []
        """`frames[i]` is the SSE frame of `seq_id` base_seq + i + 1."""
        self.events: list[Event] = []
        """The events as emitted (with `seq_id`), for non-streaming responses."""
        self._json: list[bytes] = []
        self._durable = 0
        """How many events (of this writer's) the store holds; live readers see only these."""
        self._taken = 0
        """How many events a write has taken (stored, or being stored): a batch is full when 64
        more have been emitted since, not counting those already on their way to the store."""
        self._waiter: asyncio.Future[None] | None = None
        self._dirty = asyncio.Event()
        self._full = asyncio.Event()
        self._write_lock = asyncio.Lock()
        self._closing = False
        self._end: Callable[[RunRecord], RunRecord] | None = None
        self.ended: RunRecord | None = None
        """The run as `close(end)` stored it."""
        self.closed = False
        self.abandoned = False
        """Stopped without closing (lost to another worker, or the process is going away)."""
        self._flusher: asyncio.Task[None] | None = None

    @property
    def last_seq(self) -> int:
        return self.base_seq + len(self.frames)

    @property
    def durable_frames(self) -> int:
        """How many of `frames` are stored."""
        return self._durable

    @property
    def live_frames(self) -> int:
        """How many of `frames` a live reader may be sent: the stored ones, or all of a run no one
        resumes but its closing `[DONE]`, which waits for the write that ends the run record so
        that a client that read the whole stream never finds the run still running."""
        if self.resumable:
            return self._durable
        if self._closing and self._durable < len(self.frames):
            return len(self.frames) - 1
        return len(self.frames)

    def start(self) -> None:
        """Start the one flusher of this writer (a second would race the first for every batch)."""
        if self._flusher is not None:
            raise RuntimeError(f"the event log writer of {self.run_id} is already started")
        self._flusher = asyncio.create_task(self._flush_loop(), name=f"flush-{self.run_id}")

    def emit(self, event: Event) -> None:
        """Append one event; filtered message types are dropped before they get a number."""
        if self.closed or self._closing:
            raise RuntimeError(f"event log of {self.run_id} is closed")
        if not self.accepts(event):
            return
        seq = self.base_seq + len(self.frames) + 1
        event["seq_id"] = seq
        data = orjson.dumps(event)
        self.events.append(event)
        self._append(seq, data)

    def accepts(self, event: Event) -> bool:
        """False for a message type the request filtered out (`include_return_message_types`)."""
        kind = event["message_type"]
        return self._include is None or kind not in MESSAGE_TYPES or kind in self._include

    def _append(self, seq: int, data: bytes) -> None:
        self.frames.append(frame(seq, data))
        self._json.append(data)
        if not self.resumable:
            self._wake_readers()
        if not self._dirty.is_set():
            self._dirty.set()
        if len(self._json) - self._taken >= self._flush_events:
            self._full.set()

    def _wake_readers(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    async def flush(self) -> None:
        """Make every event emitted so far durable before returning (a step commits only after this)."""
        await self._write_pending()

    async def wait_beyond(self, count: int, wait_s: float | None = None) -> bool:
        """Wait until more than `count` frames (this writer's) may be sent, or the log closes or is
        abandoned; False on timeout."""
        while self.live_frames <= count and not self.closed and not self.abandoned:
            if self._waiter is None or self._waiter.done():
                self._waiter = asyncio.get_running_loop().create_future()
            try:
                if wait_s is None:
                    await asyncio.shield(self._waiter)
                else:
                    await asyncio.wait_for(asyncio.shield(self._waiter), wait_s)
            except TimeoutError:
                return False
        return True

    async def close(self, end: Callable[[RunRecord], RunRecord] | None = None) -> RunRecord | None:
        """Write everything, then the `[DONE]` sentinel; the log is complete after this returns.
        With `end`, the write of `[DONE]` also ends the run record (`Store.end_log`), which is
        returned as stored: a reader of `[DONE]` never finds the run still running."""
        if self.closed:
            return self.ended
        self._end = end
        self._closing = True
        self._append(self.last_seq + 1, DONE)
        self._dirty.set()
        self._full.set()
        try:
            if self._flusher is not None:
                await self._flusher
            else:
                await self._write_pending()
        finally:
            self.closed = True
            self._wake_readers()
        return self.ended

    async def stop(self) -> None:
        """Write everything emitted, then stop the flusher, leaving the log open for the run's next
        writer (a Step Functions task hands the log on to the next task)."""
        try:
            await self._write_pending()
        finally:
            await self.abort()

    async def abort(self) -> None:
        """Stop the flusher without closing (the process is going away, or another worker has the run)."""
        self.abandoned = True
        self._wake_readers()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher

    async def _flush_loop(self) -> None:
        loop = asyncio.get_running_loop()
        last_write = -self._flush_interval  # idle: the first event is written at once
        while True:
            await self._dirty.wait()
            if not self.resumable:
                if not self._closing:
                    await self._full.wait()  # a full batch, or close (`flush` writes on its own)
            elif not self._closing and (wait_s := self._flush_interval - (loop.time() - last_write)) > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), wait_s)
            self._dirty.clear()
            self._full.clear()
            await self._write_pending()
            last_write = loop.time()
            if self._closing and self._durable == len(self._json):
                return

    async def _write_pending(self) -> None:
        async with self._write_lock:
            start, end = self._durable, len(self._json)
            if start == end:
                return
            self._taken = end
            batch = [data.decode() for data in self._json[start:end]]
            first = self.base_seq + start + 1
            if self._end is not None and self._json[end - 1] == DONE:
                self.ended = await self.store.end_log(self.tenant_id, self.run_id, first, batch, self._end)
            else:
                await self.store.append_events(self.tenant_id, self.run_id, first, batch)
            self._durable = end
            self._wake_readers()


async def logged_stop(store: Store, tenant_id: str, run_id: str) -> str | None:
    """The stop reason of a complete log (one ending in `[DONE]`), None while the log is open."""
    last = await store.last_seq(tenant_id, run_id)
    if not last:
        return None
    tail = await store.read_events(tenant_id, run_id, max(0, last - 3), 3)
    if not tail or tail[-1][1].encode() != DONE:
        return None
    return next(
        (
            str(e["stop_reason"])
            for e in map(orjson.loads, (d for _, d in tail[:-1]))
            if e.get("message_type") == "stop_reason"
        ),
        "error",
    )


def run_log(store: Store, settings: Settings, run: RunRecord, base_seq: int) -> RunLog:
    """The started log writer of `run` (its message-type filter and the configured coalescing),
    continuing after `base_seq` events already stored: every worker of a run writes through one."""
    include = RunOptions.of(run).include_return_message_types
    log = RunLog(
        store,
        run.tenant_id,
        run.id,
        include_types=frozenset(include) if include is not None else None,
        flush_events=settings.log_flush_events,
        flush_interval_s=settings.log_flush_interval_s,
        base_seq=base_seq,
        resumable=run.background,
    )
    log.start()
    return log
