"""The SQLite database, its directory and its -wal/-shm files are private, whatever the umask."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from chorus.store.sqlite import SQLiteStore


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0o022)  # the usual default: without care, files are 0644 and directories 0755
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_new_database_is_private(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "state" / "chorus.db"
    store = SQLiteStore(db)
    await store.open()
    try:
        assert _mode(db.parent) == 0o700
        files = [db, db.with_name("chorus.db-wal"), db.with_name("chorus.db-shm")]
        assert all(f.exists() for f in files)
        assert {f.name: _mode(f) for f in files} == {f.name: 0o600 for f in files}
    finally:
        await store.close()


async def test_a_readable_database_is_tightened(
    tmp_path: Path, open_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    db = tmp_path / "chorus.db"
    first = SQLiteStore(db)
    await first.open()
    await first.close()
    os.chmod(db, 0o644)
    second = SQLiteStore(db)
    await second.open()
    try:
        assert _mode(db) == 0o600
        assert "readable by other users" in caplog.text
    finally:
        await second.close()


async def test_a_shared_existing_directory_is_left_alone_with_a_warning(
    tmp_path: Path, open_umask: None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    os.chmod(tmp_path, 0o755)
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    await store.close()
    assert _mode(tmp_path) == 0o755
    assert "accessible to other users" in caplog.text
