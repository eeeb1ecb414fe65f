"""The runs of `SQLiteStore` and what coordinates them.

Run records, the claim of a direct run's first attempt, the claim that keeps one active run per group, the tenant's run
slots, a group's line of waiting runs and idempotency keys. Each check-then-write
is one `BEGIN IMMEDIATE` transaction (`SQLiteCore._tx`), so two callers never
both win.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from chorus.errors import Conflict, NotFound
from chorus.store.records import TERMINAL_STATUSES, GroupQueue, IdempotencyRecord, Page, RunRecord
from chorus.store.sqlite_core import SQLiteCore


class SQLiteRuns(SQLiteCore):
    """The run, claim, slot, group-line and idempotency methods of the `store` port."""

    async def put_run(self, run: RunRecord) -> None:
        await self._call(self._put_sync, "runs", run, self._run_columns(run))

    async def get_run(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> RunRecord:
        """Every read here is current (`consistent` is the DynamoDB store's choice)."""
        return RunRecord.model_validate_json(await self._call(self._get_sync, "runs", tenant_id, run_id))

    async def run_version(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> int:
        def read() -> int:
            row = self._db.execute("SELECT version FROM runs WHERE tenant_id = ? AND id = ?", (tenant_id, run_id))
            found = row.fetchone()
            if found is None:
                raise NotFound(f"Run not found: {run_id}")
            return int(found[0])

        return await self._call(read)

    async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
        return await self._cas("runs", run, expect_version, self._run_columns)

    async def list_runs(
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        statuses: list[str] | None = None,
        background: bool | None = None,
    ) -> list[RunRecord]:
        filters: dict[str, Any] = {"group_id": group_id, "agent_id": agent_id}
        if background is not None:
            filters["background"] = int(background)
        if statuses is not None:
            filters["status"] = list(statuses)
        return await self._list(RunRecord, "runs", tenant_id, page, filters, "created_at")

    async def list_unfinished_runs(self, limit: int) -> list[RunRecord]:
        def read() -> list[str]:
            rows = self._db.execute(
                "SELECT data FROM runs WHERE status IN ('created', 'running') ORDER BY created_at LIMIT ?", (limit,)
            )
            return [str(r[0]) for r in rows]

        return [RunRecord.model_validate_json(r) for r in await self._call(read)]

    async def delete_run(self, tenant_id: str, run_id: str) -> None:
        def delete(db: sqlite3.Connection) -> None:
            self._delete_sync("runs", tenant_id, run_id)
            db.execute("DELETE FROM run_events WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id))
            db.execute("DELETE FROM steps WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id))
            db.execute("DELETE FROM run_attempts WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id))

        await self._call(self._tx, delete)

    async def claim_first_attempt(self, tenant_id: str, run_id: str, attempt_id: str) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            db.execute(
                "INSERT OR IGNORE INTO run_attempts (tenant_id, run_id, attempt) VALUES (?, ?, ?)",
                (tenant_id, run_id, attempt_id),
            )
            row = db.execute(
                "SELECT attempt FROM run_attempts WHERE tenant_id = ? AND run_id = ?", (tenant_id, run_id)
            ).fetchone()
            return bool(row[0] == attempt_id)

        return await self._call(self._tx, claim)

    async def claim_group(self, tenant_id: str, group_id: str, run_id: str) -> str | None:
        def claim(db: sqlite3.Connection) -> str | None:
            row = db.execute(
                "SELECT c.run_id, r.status FROM group_claims c LEFT JOIN runs r "
                "ON r.tenant_id = c.tenant_id AND r.id = c.run_id WHERE c.tenant_id = ? AND c.group_id = ?",
                (tenant_id, group_id),
            ).fetchone()
            if row is not None and row[0] != run_id and row[1] is not None and row[1] not in TERMINAL_STATUSES:
                return str(row[0])
            db.execute(
                "INSERT OR REPLACE INTO group_claims (tenant_id, group_id, run_id) VALUES (?, ?, ?)",
                (tenant_id, group_id, run_id),
            )
            return None

        return await self._call(self._tx, claim)

    async def release_group(self, tenant_id: str, group_id: str, run_id: str) -> None:
        def release() -> None:
            self._db.execute(
                "DELETE FROM group_claims WHERE tenant_id = ? AND group_id = ? AND run_id = ?",
                (tenant_id, group_id, run_id),
            )

        await self._call(release)

    async def claim_run_slot(self, tenant_id: str, run_id: str, limit: int) -> bool:
        def claim(db: sqlite3.Connection) -> bool:
            rows = db.execute(
                "SELECT s.slot, s.run_id, r.status FROM run_slots s LEFT JOIN runs r "
                "ON r.tenant_id = s.tenant_id AND r.id = s.run_id WHERE s.tenant_id = ? AND s.slot < ?",
                (tenant_id, limit),
            ).fetchall()
            held = {int(slot): (holder, status) for slot, holder, status in rows}
            if any(holder == run_id for holder, _ in held.values()):
                return True
            for slot in range(limit):
                holder, status = held.get(slot, (None, None))
                if holder is None or status is None or status in TERMINAL_STATUSES:
                    db.execute(
                        "INSERT OR REPLACE INTO run_slots (tenant_id, slot, run_id) VALUES (?, ?, ?)",
                        (tenant_id, slot, run_id),
                    )
                    return True
            return False

        return await self._call(self._tx, claim)

    async def get_group_queue(self, tenant_id: str, group_id: str) -> GroupQueue:
        def read() -> str | None:
            row = self._db.execute(
                "SELECT data FROM group_queues WHERE tenant_id = ? AND group_id = ?", (tenant_id, group_id)
            ).fetchone()
            return None if row is None else str(row[0])

        data = await self._call(read)
        if data is None:
            return GroupQueue(tenant_id=tenant_id, group_id=group_id)
        return GroupQueue.model_validate_json(data)

    async def put_group_queue(self, queue: GroupQueue, *, expect_version: int) -> GroupQueue:
        stored = queue.model_copy(update={"version": expect_version + 1})

        def write(db: sqlite3.Connection) -> None:
            row = db.execute(
                "SELECT version FROM group_queues WHERE tenant_id = ? AND group_id = ?",
                (queue.tenant_id, queue.group_id),
            ).fetchone()
            if (0 if row is None else int(row[0])) != expect_version:
                raise Conflict(f"The line of group {queue.group_id} changed; expected version {expect_version}.")
            db.execute(
                "INSERT OR REPLACE INTO group_queues (tenant_id, group_id, version, data) VALUES (?, ?, ?, ?)",
                (queue.tenant_id, queue.group_id, stored.version, stored.model_dump_json()),
            )

        await self._call(self._tx, write)
        return stored

    async def remember_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        def remember(db: sqlite3.Connection) -> str:
            row = db.execute(
                "SELECT data FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND expires_at > ?",
                (record.tenant_id, record.key, time.time()),
            ).fetchone()
            if row is not None:
                return str(row[0])
            data = record.model_dump_json()
            db.execute(
                "INSERT OR REPLACE INTO idempotency_keys (tenant_id, key, expires_at, data) VALUES (?, ?, ?, ?)",
                (record.tenant_id, record.key, record.expires_at, data),
            )
            return data

        return IdempotencyRecord.model_validate_json(await self._call(self._tx, remember))

    async def forget_idempotency_key(self, tenant_id: str, key: str, run_id: str) -> None:
        def forget() -> None:
            self._db.execute(
                "DELETE FROM idempotency_keys WHERE tenant_id = ? AND key = ? AND json_extract(data, '$.run_id') = ?",
                (tenant_id, key, run_id),
            )

        await self._call(forget)
