"""`SQLiteStore`: the embedded default adapter of the `store` port.

One file, WAL mode, versioned migrations. A call runs on the event loop's
own connection, CPU work only, and moves to a worker thread when it would
wait for a lock (see `_call`: the event loop never waits on SQLite,
invariant 5). Every multi-statement write is one `BEGIN IMMEDIATE`
transaction, so the read-then-insert of `append_events` cannot race. Records are stored as their JSON beside the
columns that index them. The event log keeps one row per appended batch (a
coalesced log record); `read_events` splits rows back into single events.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import orjson

from chorus.errors import AlreadyCommitted, ChorusError, Conflict, NotFound, StorageUnavailable
from chorus.store.base import LOG_END
from chorus.store.records import (
    TERMINAL_STATUSES,
    AgentRecord,
    BlockRecord,
    GroupQueue,
    GroupRecord,
    IdempotencyRecord,
    McpServerRecord,
    MessageRecord,
    Page,
    Record,
    RunRecord,
    StepRecord,
    ToolRecord,
)
from chorus.store.sqlite_migrations import MIGRATIONS

logger = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R", bound=Record)

_KINDS: dict[str, str] = {
    "agents": "Agent",
    "groups": "Group",
    "runs": "Run",
    "messages": "Message",
    "blocks": "Block",
    "tools": "Tool",
    "mcp_servers": "MCP server",
}
V = TypeVar("V", RunRecord, BlockRecord)

_IN_BATCH = 500
"""Ids per `IN (…)` query: well under SQLite's bound-variable limit (999 before 3.32)."""


CHECKPOINT_EVERY = 256
"""Store calls between two passive WAL checkpoints on the worker thread (the loop's connections never
checkpoint: a checkpoint writes the database file and syncs it, which can take milliseconds)."""


def make_private(path: Path) -> None:
    """Create the database file 0600 in a 0700 directory, whatever the umask, before SQLite opens it.

    The database holds every tenant's messages and tool sources; SQLite creates its
    `-wal` and `-shm` files with the database file's permissions, so those follow.
    A database file (or its `-wal`/`-shm`) readable by others is tightened to 0600
    with a warning. An existing directory is left as it is (it may be the working
    directory, shared on purpose), with a warning if others may enter it.
    """
    directory = path.parent
    if not directory.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(directory, 0o700)
    elif directory.stat().st_mode & 0o077:
        logger.warning("The directory of the database, %s, is accessible to other users.", directory)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        if file.exists() and file.stat().st_mode & 0o077:
            os.chmod(file, 0o600)
            logger.warning("%s was readable by other users; its permissions are now 0600.", file)


class SQLiteStore:
    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self._executor: ThreadPoolExecutor | None = None
        self._worker_conn: sqlite3.Connection | None = None
        self._local = threading.local()
        """This thread's connection, for calls run on an event loop (`_call`)."""
        self._connections: list[sqlite3.Connection] = []
        self._worker_ident: int | None = None
        self._on_loop = self.path != ":memory:"
        """Whether calls run on the calling thread's connection (another connection to ":memory:"
        would be another database, so an in-memory store keeps everything on its worker)."""
        self._calls = 0
        self._checkpoint: Future[None] | None = None

    # plumbing
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn` on this thread's own connection, or on the worker thread when it would wait.

        A hop to a worker thread costs 0.1 ms when that thread's CPU is awake and several ms when
        it is not (measured on these 2-vCPU VMs; Lambda runs on the same kind), and a run makes
        ten store calls before its first byte: the hop, not SQLite, was most of Chorus's time to
        first byte. The work itself takes 5-300 µs of CPU in WAL mode with `synchronous=NORMAL`
        (no sync on commit) and the loop's connections never checkpoint, so on the loop it never
        waits on the disk. The one thing that could make it wait is another connection's write
        lock (another process, or the worker thread mid-transaction): the loop's connections have
        no busy timeout, so such a call fails at once with `SQLITE_BUSY`, before writing anything,
        and is run again on the worker thread, which waits for the lock there. So the event loop
        does CPU work only and never waits (invariant 5, `tests/unit/test_sqlite_loop.py`).
        """
        if self._executor is None:
            raise RuntimeError("SQLiteStore is not open")
        self._calls += 1
        if self._calls % CHECKPOINT_EVERY == 0:
            self._start_checkpoint()
        try:
            if self._on_loop:
                try:
                    result = fn(*args)
                except sqlite3.OperationalError as exc:
                    if exc.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY:
                        raise
                else:
                    await asyncio.sleep(0)  # a turn for everyone else, as an awaited hop gave
                    return result
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except ChorusError:
            raise
        except sqlite3.Error as exc:
            raise StorageUnavailable(f"Storage error: {exc}") from exc

    @property
    def _db(self) -> sqlite3.Connection:
        """The calling thread's connection: the worker's own, or one per thread running a loop."""
        if threading.get_ident() == self._worker_ident or not self._on_loop:
            assert self._worker_conn is not None, "SQLiteStore is not open"
            return self._worker_conn
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect(busy_timeout_ms=0)
            conn.execute("PRAGMA wal_autocheckpoint=0")
            self._local.conn = conn
        return conn

    def _connect(self, busy_timeout_ms: int) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        conn.execute("PRAGMA synchronous=NORMAL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
        self._connections.append(conn)
        return conn

    def _start_checkpoint(self) -> None:
        if self._executor is None or not self._on_loop:
            return
        if self._checkpoint is None or self._checkpoint.done():
            self._checkpoint = self._executor.submit(self._checkpoint_sync)

    def _checkpoint_sync(self) -> None:
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error:
            logger.warning("WAL checkpoint of %s failed; the next one retries", self.path, exc_info=True)

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="chorus-sqlite", initializer=self._claim_worker
        )
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    def _claim_worker(self) -> None:
        self._worker_ident = threading.get_ident()

    def _open_sync(self) -> None:
        if self.path != ":memory:":
            make_private(Path(self.path))
        conn = self._connect(busy_timeout_ms=5000)
        conn.execute("PRAGMA journal_mode=WAL")
        self._worker_conn = conn
        current = conn.execute("PRAGMA user_version").fetchone()[0]
        for version, sql in MIGRATIONS:
            if version <= current:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in sql.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(version)}")
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    async def close(self) -> None:
        if self._executor is None:
            return
        executor, self._executor = self._executor, None
        await asyncio.get_running_loop().run_in_executor(executor, self._close_sync)
        executor.shutdown(wait=True)

    def _close_sync(self) -> None:
        """Checkpoint what the loop's connections wrote, then close every connection."""
        if self._worker_conn is not None and self._on_loop:
            self._checkpoint_sync()
        for conn in self._connections:
            conn.close()
        self._connections.clear()
        self._worker_conn = None
        self._local = threading.local()

    def _tx(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            result = fn(db)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")
        return result

    # generic records
    def _put_sync(self, table: str, record: Record, extra: dict[str, Any]) -> None:
        columns = ["tenant_id", "id", "created_at", "data", *extra]
        values = [record.tenant_id, record.id, record.created_at, record.model_dump_json(), *extra.values()]
        marks = ", ".join("?" for _ in columns)
        self._db.execute(f"INSERT OR REPLACE INTO {table} ({', '.join(columns)}) VALUES ({marks})", values)

    def _get_sync(self, table: str, tenant_id: str, record_id: str) -> str:
        row = self._db.execute(
            f"SELECT data FROM {table} WHERE tenant_id = ? AND id = ?", (tenant_id, record_id)
        ).fetchone()
        if row is None:
            raise NotFound(f"{_KINDS[table]} not found: {record_id}")
        return str(row[0])

    def _get_many_sync(self, table: str, tenant_id: str, record_ids: list[str]) -> list[str]:
        """The bodies of the records among `record_ids`, in that order: one `IN` query per `_IN_BATCH` ids."""
        wanted = list(dict.fromkeys(record_ids))
        found: dict[str, str] = {}
        for start in range(0, len(wanted), _IN_BATCH):
            batch = wanted[start : start + _IN_BATCH]
            marks = ", ".join("?" for _ in batch)
            sql = f"SELECT id, data FROM {table} WHERE tenant_id = ? AND id IN ({marks})"
            found.update((str(i), str(d)) for i, d in self._db.execute(sql, [tenant_id, *batch]).fetchall())
        return [found[i] for i in wanted if i in found]

    def _delete_sync(self, table: str, tenant_id: str, record_id: str) -> None:
        cursor = self._db.execute(f"DELETE FROM {table} WHERE tenant_id = ? AND id = ?", (tenant_id, record_id))
        if cursor.rowcount == 0:
            raise NotFound(f"{_KINDS[table]} not found: {record_id}")

    def _list_sync(self, table: str, tenant_id: str, page: Page, filters: dict[str, Any], order_col: str) -> list[str]:
        """Keyset pagination on (`order_col`, id); cursors are ids of the same table."""
        where = ["tenant_id = ?"]
        params: list[Any] = [tenant_id]
        for column, value in filters.items():
            if isinstance(value, list):
                where.append(f"{column} IN ({', '.join('?' for _ in value) or 'NULL'})")
                params.extend(value)
            elif value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        for cursor_id, op in (
            (page.after, ">" if page.order == "asc" else "<"),
            (page.before, "<" if page.order == "asc" else ">"),
        ):
            if cursor_id is None:
                continue
            row = self._db.execute(
                f"SELECT {order_col}, id FROM {table} WHERE tenant_id = ? AND id = ?", (tenant_id, cursor_id)
            ).fetchone()
            if row is None:
                raise NotFound(f"{_KINDS[table]} not found: {cursor_id}")
            where.append(f"({order_col}, id) {op} (?, ?)")
            params.extend(row)
        direction = "ASC" if page.order == "asc" else "DESC"
        sql = (
            f"SELECT data FROM {table} WHERE {' AND '.join(where)} "
            f"ORDER BY {order_col} {direction}, id {direction} LIMIT ?"
        )
        return [str(r[0]) for r in self._db.execute(sql, [*params, page.limit]).fetchall()]

    async def _list(
        self, model: type[R], table: str, tenant_id: str, page: Page, filters: dict[str, Any], order_col: str
    ) -> list[R]:
        rows = await self._call(self._list_sync, table, tenant_id, page, filters, order_col)
        return [model.model_validate_json(r) for r in rows]

    # agents
    async def put_agent(self, agent: AgentRecord) -> None:
        await self._call(self._put_sync, "agents", agent, {})

    async def get_agent(self, tenant_id: str, agent_id: str) -> AgentRecord:
        return AgentRecord.model_validate_json(await self._call(self._get_sync, "agents", tenant_id, agent_id))

    async def list_agents(self, tenant_id: str, page: Page) -> list[AgentRecord]:
        return await self._list(AgentRecord, "agents", tenant_id, page, {}, "created_at")

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        await self._call(self._delete_sync, "agents", tenant_id, agent_id)

    # tools
    async def put_tool(self, tool: ToolRecord) -> None:
        await self._call(self._put_sync, "tools", tool, {"name": tool.name})

    async def get_tool(self, tenant_id: str, tool_id: str) -> ToolRecord:
        return ToolRecord.model_validate_json(await self._call(self._get_sync, "tools", tenant_id, tool_id))

    async def get_tools(self, tenant_id: str, tool_ids: list[str]) -> list[ToolRecord]:
        rows = await self._call(self._get_many_sync, "tools", tenant_id, tool_ids)
        return [ToolRecord.model_validate_json(r) for r in rows]

    async def list_tools(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[ToolRecord]:
        return await self._list(ToolRecord, "tools", tenant_id, page, {"name": name}, "created_at")

    async def delete_tool(self, tenant_id: str, tool_id: str) -> None:
        await self._call(self._delete_sync, "tools", tenant_id, tool_id)

    # MCP servers
    async def put_mcp_server(self, server: McpServerRecord) -> None:
        await self._call(self._put_sync, "mcp_servers", server, {"name": server.server_name})

    async def get_mcp_server(self, tenant_id: str, server_id: str) -> McpServerRecord:
        return McpServerRecord.model_validate_json(
            await self._call(self._get_sync, "mcp_servers", tenant_id, server_id)
        )

    async def list_mcp_servers(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[McpServerRecord]:
        return await self._list(McpServerRecord, "mcp_servers", tenant_id, page, {"name": name}, "created_at")

    async def delete_mcp_server(self, tenant_id: str, server_id: str) -> None:
        await self._call(self._delete_sync, "mcp_servers", tenant_id, server_id)

    # memory blocks
    async def put_block(self, block: BlockRecord) -> None:
        await self._call(self._put_sync, "blocks", block, {"label": block.label, "version": block.version})

    async def get_block(self, tenant_id: str, block_id: str) -> BlockRecord:
        return BlockRecord.model_validate_json(await self._call(self._get_sync, "blocks", tenant_id, block_id))

    async def get_blocks(self, tenant_id: str, block_ids: list[str]) -> list[BlockRecord]:
        rows = await self._call(self._get_many_sync, "blocks", tenant_id, block_ids)
        return [BlockRecord.model_validate_json(r) for r in rows]

    async def list_blocks(self, tenant_id: str, page: Page, *, label: str | None = None) -> list[BlockRecord]:
        return await self._list(BlockRecord, "blocks", tenant_id, page, {"label": label}, "created_at")

    async def update_block(self, block: BlockRecord, *, expect_version: int) -> BlockRecord:
        return await self._cas("blocks", block, expect_version, lambda b: {"label": b.label, "version": b.version})

    async def delete_block(self, tenant_id: str, block_id: str) -> None:
        await self._call(self._delete_sync, "blocks", tenant_id, block_id)

    async def _cas(self, table: str, record: V, expect_version: int, columns: Callable[[V], dict[str, Any]]) -> V:
        """Store `record` with `version = expect_version + 1` if the stored version is `expect_version`."""
        stored = record.model_copy(update={"version": expect_version + 1})

        def write(db: sqlite3.Connection) -> None:
            row = db.execute(
                f"SELECT version FROM {table} WHERE tenant_id = ? AND id = ?", (record.tenant_id, record.id)
            ).fetchone()
            if row is None:
                raise NotFound(f"{_KINDS[table]} not found: {record.id}")
            if row[0] != expect_version:
                raise Conflict(f"{_KINDS[table]} {record.id} changed (version {row[0]}, expected {expect_version}).")
            self._put_sync(table, stored, columns(stored))

        await self._call(self._tx, write)
        return stored

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        await self._call(self._put_sync, "groups", group, {"listed": int(group.solo_agent_id is None)})

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord:
        return GroupRecord.model_validate_json(await self._call(self._get_sync, "groups", tenant_id, group_id))

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]:
        return await self._list(GroupRecord, "groups", tenant_id, page, {"listed": 1}, "created_at")

    async def delete_group(self, tenant_id: str, group_id: str) -> None:
        await self._call(self._delete_sync, "groups", tenant_id, group_id)

    # runs
    @staticmethod
    def _run_columns(run: RunRecord) -> dict[str, Any]:
        return {
            "group_id": run.group_id,
            "agent_id": run.agent_id,
            "status": run.status,
            "background": int(run.background),
            "version": run.version,
        }

    async def put_run(self, run: RunRecord) -> None:
        await self._call(self._put_sync, "runs", run, self._run_columns(run))

    async def get_run(self, tenant_id: str, run_id: str) -> RunRecord:
        return RunRecord.model_validate_json(await self._call(self._get_sync, "runs", tenant_id, run_id))

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

        await self._call(self._tx, delete)

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

    # history
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
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[MessageRecord]:
        filters: dict[str, Any] = {"group_id": group_id, "agent_id": agent_id, "run_id": run_id}
        return await self._list(MessageRecord, "messages", tenant_id, page, filters, "position")

    async def history_page(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        filters: dict[str, Any] = {"group_id": group_id, "run_id": run_id}
        return [
            orjson.loads(r) for r in await self._call(self._list_sync, "messages", tenant_id, page, filters, "position")
        ]

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

    # the run event log
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
        if first_seq != last + 1:
            raise Conflict(f"Event log of run {run_id} ends at seq_id {last}; cannot append at {first_seq}.")
        if row is not None and str(row[1]).rpartition("\n")[2] == LOG_END:
            raise Conflict(f"Event log of run {run_id} is complete; nothing can be appended.")
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
