"""The one reader of run event logs, for live streams and resumes alike.

A run executing in this process is read from its `RunLog` in memory (no
store round trip per token); any other run is read from the store in
batches, polling until the `[DONE]` sentinel. Both paths start at a cursor
and yield SSE frames in `seq_id` order, so a resume returns exactly what the
live stream sent after that cursor (invariant 1). Pings are interleaved only
on request and carry no `seq_id`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

from chorus.runs.frames import DONE, DONE_FRAME, PING_FRAME, frame
from chorus.runs.log import RunLog
from chorus.store.base import Store

STATUS_CHECK_S = 1.0
"""How often a store reader with nothing new checks whether the run ended without `[DONE]`."""


class WriterAbandoned(Exception):
    """The live log stopped without closing (its worker lost the run, or the process is stopping):
    `after_seq` is the last `seq_id` its reader was sent, where a reader of the store goes on."""

    def __init__(self, after_seq: int) -> None:
        super().__init__(f"the run's writer here stopped after seq_id {after_seq}")
        self.after_seq = after_seq


async def tail_memory(log: RunLog, after_seq: int, ping_interval: float | None) -> AsyncIterator[bytes]:
    """Frames after `after_seq` (>= the log's `base_seq`) from a live log as they may be sent
    (`RunLog.live_frames`), then `[DONE]`; `WriterAbandoned` if the log is abandoned open.

    A cursor past the log's end (a client that resumes with a later `seq_id` than
    the run has reached) waits for events beyond it and, when the run ends, is
    sent `[DONE]` all the same: every stream of a finished run ends with it."""
    sent = after_seq - log.base_seq
    assert sent >= 0, "read the stored part of a recovered log from the store first"
    while True:
        live = log.live_frames
        if live > sent:
            batch = log.frames[sent:live]
            sent = live
            yield b"".join(batch)
            if log.closed and sent == len(log.frames):
                return
            continue
        if log.abandoned and not log.closed:
            raise WriterAbandoned(log.base_seq + sent)
        if log.closed:
            if sent > len(log.frames) or (sent == len(log.frames) and sent == after_seq - log.base_seq):
                yield DONE_FRAME  # nothing of the log was sent: the cursor was at or past its end
            return
        arrived = await log.wait_beyond(sent, ping_interval)
        if not arrived:
            yield PING_FRAME


async def tail_store(
    store: Store,
    tenant_id: str,
    run_id: str,
    after_seq: int,
    *,
    batch_size: int,
    poll_interval: float,
    ping_interval: float | None,
) -> AsyncIterator[bytes]:
    """Frames after `after_seq` read from the store, polling for more until `[DONE]`."""
    cursor = after_seq
    last_output = time.monotonic()
    last_check = last_output - STATUS_CHECK_S  # a cursor past the end of a finished run gets [DONE] at once
    while True:
        rows = await store.read_events(tenant_id, run_id, cursor, batch_size)
        if rows:
            cursor = rows[-1][0]
            yield b"".join(frame(seq, data.encode()) for seq, data in rows)
            last_output = time.monotonic()
            if rows[-1][1].encode() == DONE:
                return
            continue
        if time.monotonic() - last_check >= STATUS_CHECK_S:
            last_check = time.monotonic()
            run = await store.get_run(tenant_id, run_id)
            if run.is_terminal and not await store.read_events(tenant_id, run_id, cursor, 1):
                yield DONE_FRAME  # the run ended without completing its log (its writer died); end the stream
                return
        if ping_interval is not None and time.monotonic() - last_output >= ping_interval:
            yield PING_FRAME
            last_output = time.monotonic()
        await asyncio.sleep(poll_interval)
