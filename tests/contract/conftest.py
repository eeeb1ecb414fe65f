"""The `store` fixture of the contract suite: every test runs against SQLite and DynamoDB (moto)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chorus.store.base import Store
from chorus.store.sqlite import SQLiteStore
from support.dynamodb import dynamodb_store, moto_dynamodb


@pytest.fixture(params=["sqlite", "dynamodb"])
async def store(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Store]:
    if request.param == "sqlite":
        the_store: Store = SQLiteStore(tmp_path / "contract.db")
        await the_store.open()
        yield the_store
        await the_store.close()
        return
    with moto_dynamodb(monkeypatch) as client:
        the_store = dynamodb_store(client)
        await the_store.open()
        yield the_store
        await the_store.close()
