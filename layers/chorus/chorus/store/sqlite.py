"""`SQLiteStore`: the embedded default adapter of the `store` port.

One file, WAL mode, versioned migrations. A call runs on the event loop's
own connection, CPU work only, and moves to a worker thread when it would
wait for a lock (see `SQLiteCore._call`: the event loop never waits on SQLite,
invariant 5). Every multi-statement write is one `BEGIN IMMEDIATE`
transaction, so the read-then-insert of `append_events` cannot race. Records are stored as their JSON beside the
columns that index them. The event log keeps one row per appended batch (a
coalesced log record); `read_events` splits rows back into single events.

The adapter is composed of one part per responsibility: the connections and
generic record helpers (`sqlite_core`), the resources (`sqlite_resources`),
runs with their claims, slots, lines and idempotency keys (`sqlite_runs`), the
message history (`sqlite_history`) and the event log (`sqlite_log`).
"""

from __future__ import annotations

from chorus.store.sqlite_core import CHECKPOINT_EVERY, SQLiteCore, make_private
from chorus.store.sqlite_history import SQLiteHistory
from chorus.store.sqlite_log import SQLiteEventLog
from chorus.store.sqlite_resources import SQLiteResources
from chorus.store.sqlite_runs import SQLiteRuns

__all__ = ["CHECKPOINT_EVERY", "SQLiteCore", "SQLiteStore", "make_private"]


class SQLiteStore(SQLiteResources, SQLiteRuns, SQLiteHistory, SQLiteEventLog):
    """The `store` port on one SQLite file (or `":memory:"`): see the module docstring."""
