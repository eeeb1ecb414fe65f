"""Following a run: its SSE frames after a `seq_id`, live from memory or from the stored log.

A run executing in this process is followed from its log in memory (after the stored part
before the log's base, for a log continued by an adopting worker); any other run, from the
store, polled. Either way a reader sees the same numbered frames and `[DONE]` last.

When the writer here is abandoned mid-run (it lost its lease to a worker elsewhere), a reader
sent only stored frames goes on from the store, where the adopting worker continues the log.
A reader of a run no client can resume may have been sent frames that were never stored,
which the adopting worker numbers again: its stream ends with an error event and `[DONE]`
instead (the run goes on; `GET /v1/runs/{id}` shows it).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from chorus.engine import events
from chorus.errors import BadRequest, RunExpired
from chorus.runs.frames import DONE, DONE_FRAME, frame, unnumbered_error_frame
from chorus.runs.log import RunLog
from chorus.runs.tailer import WriterAbandoned, tail_memory, tail_store
from chorus.store.base import Store


async def check_resumable(store: Store, tenant_id: str, run_id: str) -> None:
    """A run may be resumed if it exists (404), ran in background (400) and its log is kept (410)."""
    run = await store.get_run(tenant_id, run_id)
    if not run.background:
        raise BadRequest("Run was not created in background mode, so it cannot be resumed.")
    if run.is_terminal and run.expires_at is not None and run.expires_at < time.time():
        raise RunExpired(f"The event log of run {run_id} has expired.")


def follow(
    store: Store,
    local: RunLog | None,
    tenant_id: str,
    run_id: str,
    after_seq: int,
    *,
    ping_interval: float | None,
    poll_interval: float,
    batch_size: int,
) -> AsyncIterator[bytes]:
    """SSE frames of a run after `after_seq`: from `local`, its live log here, or else from the store."""
    if local is not None:
        return _follow_local(store, local, tenant_id, run_id, after_seq, ping_interval, poll_interval, batch_size)
    return tail_store(
        store,
        tenant_id,
        run_id,
        after_seq,
        batch_size=batch_size,
        poll_interval=poll_interval,
        ping_interval=ping_interval,
    )


async def _follow_local(
    store: Store,
    log: RunLog,
    tenant_id: str,
    run_id: str,
    after_seq: int,
    ping: float | None,
    poll_interval: float,
    batch_size: int,
) -> AsyncIterator[bytes]:
    cursor = after_seq
    while cursor < log.base_seq:
        rows = await store.read_events(tenant_id, run_id, cursor, min(batch_size, log.base_seq - cursor))
        if not rows:
            break
        cursor = rows[-1][0]
        yield b"".join(frame(seq, data.encode()) for seq, data in rows)
    try:
        async for chunk in tail_memory(log, max(cursor, log.base_seq), ping):
            yield chunk
    except WriterAbandoned as gone:
        if gone.after_seq > log.base_seq + log.durable_frames:
            yield abandoned_stream_end(run_id)
            return
        tail = tail_store(
            store, tenant_id, run_id, gone.after_seq, batch_size=batch_size, poll_interval=poll_interval,
            ping_interval=ping,
        )  # fmt: skip
        async for chunk in tail:
            yield chunk


def abandoned_stream_end(run_id: str) -> bytes:
    """The end of a stream that was sent frames its worker never stored, before another worker took
    the run: an error event without a `seq_id` (the numbers after the last one sent are the new
    worker's), then `[DONE]`."""
    error = events.error_message(
        run_id=run_id,
        error_type="internal_error",
        message="The run moved to another worker; this stream cannot follow it.",
        detail=f"Poll GET /v1/runs/{run_id} for its outcome.",
    )
    return unnumbered_error_frame(orjson.dumps(error)) + DONE_FRAME


async def events_of(store: Store, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
    """All events of a finished run's log (the `[DONE]` sentinel left out)."""
    rows = await store.read_events(tenant_id, run_id, 0, 1_000_000)
    return [orjson.loads(data) for _, data in rows if data.encode() != DONE]
