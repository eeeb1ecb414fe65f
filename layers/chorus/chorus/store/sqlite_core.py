"""The plumbing of `SQLiteStore`: its connections, transactions and generic record reads and writes.

`SQLiteCore` owns the file, the worker thread and the connections (see `_call`
for why a call runs on the event loop's own connection), and the table-generic
helpers (put, get, list with keyset pagination, compare-and-set on `version`)
that the resource, run, history and event-log parts of the store build on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from chorus.errors import ChorusError, Conflict, NotFound, StorageUnavailable
from chorus.store.records import BlockRecord, Page, Record, RunRecord
from chorus.store.sqlite_migrations import MIGRATIONS

logger = logging.getLogger("chorus.store.sqlite")  # the adapter's logger, whichever module logs

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


class SQLiteCore:
    """The connections and the generic record helpers shared by every part of `SQLiteStore`."""

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

    @staticmethod
    def _run_columns(run: RunRecord) -> dict[str, Any]:
        return {
            "group_id": run.group_id,
            "agent_id": run.agent_id,
            "status": run.status,
            "background": int(run.background),
            "version": run.version,
        }
