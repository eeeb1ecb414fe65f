"""SQLite indexes messages by group and by run only, as the port lists them; an older database drops its agent index."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chorus.store.records import Page
from chorus.store.sqlite import SQLiteStore
from chorus.store.sqlite_migrations import MIGRATIONS
from support.contract_records import message, run, step


def message_indexes(db: Path) -> set[str]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'messages'")
        return {str(name) for (name,) in rows if not str(name).startswith("sqlite_autoindex")}


async def test_a_database_from_before_drops_the_agent_index_and_keeps_its_messages(tmp_path: Path) -> None:
    db = tmp_path / "chorus.db"
    r = run(group_id="g1")
    before, after = message(r, "0001", 0, position=1), message(r, "0002", 0, position=2)
    with sqlite3.connect(db) as conn:  # the schema as it was before messages lost their agent index
        for version, sql in MIGRATIONS:
            if version < 8:
                conn.executescript(sql)
        conn.execute("PRAGMA user_version = 7")
        conn.execute(
            "INSERT INTO messages (tenant_id, id, run_id, step_key, idx, group_id, agent_id, position, data) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ("t1", before.id, r.id, "0001", 0, "g1", before.agent_id, before.position, before.model_dump_json()),
        )
    assert "messages_by_agent" in message_indexes(db)
    store = SQLiteStore(str(db))
    await store.open()
    await store.commit_step(step(r, "0002"), [after])
    assert await store.list_messages("t1", Page(order="asc"), group_id="g1") == [before, after]
    assert await store.list_messages("t1", Page(order="desc"), run_id=r.id) == [after, before]
    await store.close()
    assert message_indexes(db) == {"messages_by_group", "messages_by_run"}
