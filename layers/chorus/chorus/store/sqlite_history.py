"""The message history of `SQLiteStore`: committed steps and their messages.

A step and its messages are written in one transaction; the step's primary key
(run, step key) refuses a second commit of the same step (`AlreadyCommitted`).
The same transaction reads the run's status first: a commit to an ended run is
`RunEnded` with nothing written (the write lock is held from that read on, so no
cancel can end the run between the check and the insert).
"""

from __future__ import annotations

import sqlite3
from typing import Any

import orjson

from chorus.errors import AlreadyCommitted, RunEnded
from chorus.store.base import history_scope
from chorus.store.records import TERMINAL_STATUSES, MessageRecord, Page, StepRecord
from chorus.store.sqlite_core import SQLiteCore


class SQLiteHistory(SQLiteCore):
    """The step and message methods of the `store` port."""

    async def commit_step(self, step: StepRecord, messages: list[MessageRecord]) -> None:
        await self._call(self._tx, lambda db: self._commit_sync(db, step, messages))

    async def list_steps(self, tenant_id: str, run_id: str) -> list[StepRecord]:
        def read() -> list[str]:
            rows = self._db.execute(
                "SELECT data FROM steps WHERE tenant_id = ? AND run_id = ? ORDER BY step_key", (tenant_id, run_id)
            )
            return [str(r[0]) for r in rows]

        return [StepRecord.model_validate_json(r) for r in await self._call(read)]

    def _commit_sync(self, db: sqlite3.Connection, step: StepRecord, messages: list[MessageRecord]) -> None:
        tenant_id, run_id = step.tenant_id, step.run_id
        row = db.execute("SELECT status FROM runs WHERE tenant_id = ? AND id = ?", (tenant_id, run_id)).fetchone()
        if row is not None and row[0] in TERMINAL_STATUSES:
            raise RunEnded(f"Run {run_id} has ended ({row[0]}); step {step.step_key} is not committed.")
        try:
            db.execute(
                "INSERT INTO steps (tenant_id, run_id, step_key, data) VALUES (?, ?, ?, ?)",
                (tenant_id, run_id, step.step_key, step.model_dump_json()),
            )
        except sqlite3.IntegrityError:
            raise AlreadyCommitted(f"Step {step.step_key} of run {run_id} is already committed.") from None
        db.executemany(
            "INSERT INTO messages (tenant_id, id, run_id, step_key, idx, group_id, agent_id, position, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    tenant_id,
                    m.id,
                    run_id,
                    step.step_key,
                    m.index,
                    m.group_id,
                    m.agent_id,
                    m.position,
                    m.model_dump_json(),
                )
                for m in messages
            ],
        )

    async def list_messages(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[MessageRecord]:
        field, value = history_scope(group_id, run_id)
        return await self._list(MessageRecord, "messages", tenant_id, page, {field: value}, "position")

    async def history_page(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        field, value = history_scope(group_id, run_id)
        rows = await self._call(self._list_sync, "messages", tenant_id, page, {field: value}, "position")
        return [orjson.loads(r) for r in rows]

    async def delete_group_messages(self, tenant_id: str, group_id: str) -> int:
        def delete() -> int:
            cursor = self._db.execute(
                "DELETE FROM messages WHERE tenant_id = ? AND group_id = ?", (tenant_id, group_id)
            )
            return int(cursor.rowcount)

        return await self._call(delete)

    async def delete_run_messages(self, tenant_id: str, run_id: str) -> int:
        def delete() -> int:
            cursor = self._db.execute("DELETE FROM messages WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id))
            return int(cursor.rowcount)

        return await self._call(delete)
