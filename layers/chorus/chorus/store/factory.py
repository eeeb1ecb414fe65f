"""The store a deployment configured: SQLite locally, DynamoDB on AWS."""

from __future__ import annotations

from chorus.settings import Settings
from chorus.store.base import Store


def build_store(settings: Settings) -> Store:
    if settings.store == "sqlite":
        from chorus.store.sqlite import SQLiteStore

        return SQLiteStore(settings.db_path)
    from chorus.store.dynamodb import DynamoDBStore  # boto3 is the [aws] extra: imported only when chosen

    return DynamoDBStore.from_settings(settings.table_name, retention_s=settings.event_retention_s)
