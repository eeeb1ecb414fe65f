"""The fault-injection suite (tests/faults) on the DynamoDB store: crash anywhere, recover, same invariants.

Each SQLite file the suite opens becomes a table of its own on moto, so the
crashed worker and its successor share one table and the reference run has
another. `CHORUS_DYNAMODB_FAULT_CASES` (default 12) seeded cases.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_table import create_table
from support import crashes

CASES = int(os.environ.get("CHORUS_DYNAMODB_FAULT_CASES", "12"))


@pytest.fixture
def dynamodb_files(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    tables: dict[str, str] = {}

    def store_for(path: Path) -> DynamoDBStore:
        if str(path) not in tables:
            tables[str(path)] = f"chorus-{len(tables)}"
            create_table(dynamodb, tables[str(path)])
        return DynamoDBStore(dynamodb, tables[str(path)])

    monkeypatch.setattr(crashes, "SQLiteStore", store_for)


@pytest.mark.usefixtures("dynamodb_files")
@pytest.mark.parametrize("seed", range(CASES))
async def test_crash_anywhere_then_recover_on_dynamodb(tmp_path: Path, seed: int) -> None:
    await crashes.crash_and_recover(tmp_path, seed)
