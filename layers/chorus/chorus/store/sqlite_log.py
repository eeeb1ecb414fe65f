"""The run event log of `SQLiteStore`.

One row per appended batch (a coalesced log record, keyed by its first and last
`seq_id`); `read_events` splits rows back into single events. An append checks
the log's end and inserts its row in one transaction, so two writers never take
one number and none leaves a gap; `end_log` writes the closing batch and the
run's terminal record in the same transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from chorus.errors import Conflict, LogMoved
from chorus.store.base import LOG_END
from chorus.store.records import RunRecord
from chorus.store.sqlite_core import SQLiteCore


class SQLiteEventLog(SQLiteCore):
    """The event-log methods of the `store` port."""

    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        if events:
            await self._call(self._append_sync, tenant_id, run_id, first_seq, events)

    def _last_seq_sync(self, tenant_id: str, run_id: str) -> int:
        row = self._db.execute(
            "SELECT MAX(last_seq) FROM run_events WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id)
        ).fetchone()
        return int(row[0] or 0)

    def _append_sync(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        self._tx(lambda db: self._append_rows(db, tenant_id, run_id, first_seq, events))

    def _append_rows(
        self, db: sqlite3.Connection, tenant_id: str, run_id: str, first_seq: int, events: list[str]
    ) -> None:
        """The checks and the row of one append, inside the caller's transaction."""
        row = db.execute(
            "SELECT last_seq, data FROM run_events WHERE tenant_id = ? AND run_id = ? ORDER BY last_seq DESC LIMIT 1",
            (tenant_id, run_id),
        ).fetchone()
        last = int(row[0]) if row else 0
        if row is not None and str(row[1]).rpartition("\n")[2] == LOG_END:
            raise Conflict(f"Event log of run {run_id} is complete; nothing can be appended.")
        if first_seq != last + 1:
            raise LogMoved(f"Event log of run {run_id} ends at seq_id {last}; cannot append at {first_seq}.")
        db.execute(
            "INSERT INTO run_events (tenant_id, run_id, first_seq, last_seq, data) VALUES (?, ?, ?, ?, ?)",
            (tenant_id, run_id, first_seq, first_seq + len(events) - 1, "\n".join(events)),
        )

    async def end_log(
        self,
        tenant_id: str,
        run_id: str,
        first_seq: int,
        events: list[str],
        end: Callable[[RunRecord], RunRecord],
    ) -> RunRecord:
        def write(db: sqlite3.Connection) -> RunRecord:
            run = RunRecord.model_validate_json(self._get_sync("runs", tenant_id, run_id))
            self._append_rows(db, tenant_id, run_id, first_seq, events)
            ended = end(run)
            if ended is run:
                return run
            stored = ended.model_copy(update={"version": run.version + 1})
            self._put_sync("runs", stored, self._run_columns(stored))
            return stored

        return await self._call(self._tx, write)

    async def read_events(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        def read() -> list[tuple[int, str]]:
            out: list[tuple[int, str]] = []
            rows = self._db.execute(
                "SELECT first_seq, data FROM run_events WHERE tenant_id = ? AND run_id = ? AND last_seq > ? "
                "ORDER BY first_seq",
                (tenant_id, run_id, after_seq),
            )
            for first_seq, data in rows:
                for offset, event in enumerate(str(data).split("\n")):
                    seq = first_seq + offset
                    if seq > after_seq:
                        out.append((seq, event))
                        if len(out) >= limit:
                            return out
            return out

        return await self._call(read)

    async def last_seq(self, tenant_id: str, run_id: str) -> int:
        return await self._call(self._last_seq_sync, tenant_id, run_id)
