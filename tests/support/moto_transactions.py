"""moto's `TransactWriteItems`, rolled back item by item instead of table by table.

moto backs up every table a transaction names with `copy.deepcopy` before applying it, so
each transaction costs time in proportion to everything stored: seeding 1,200 messages took
27 s, most of a contract test, and every workflow test paid it on each step's commit. Here
the transaction runs moto's own code unchanged (its checks, conditions, error codes and
cancellation reasons), with the table backup made a no-op, and a failed transaction puts back
the items it touched (DynamoDB's all-or-nothing, which is what the backup was for). The
harnesses hold one lock around moto's requests, so no other request sees the items between.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.dynamo_type import DynamoType, Item
from moto.dynamodb.models.table import Table

_ORIGINAL = DynamoDBBackend.transact_write_items

Touched = tuple[Table, DynamoType, DynamoType | None, Item | None]


def _touched(backend: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> list[Touched]:
    """Each item the transaction names, as it is now (a copy: an update changes items in place)."""
    touched: list[Touched] = []
    for entry in transact_items:
        op = next(iter(entry.values()), None)
        table = backend.tables.get(op.get("TableName", "")) if isinstance(op, dict) else None
        key = (op.get("Item") or op.get("Key")) if isinstance(op, dict) else None
        if table is None or not isinstance(key, dict) or table.hash_key_attr not in key:
            continue  # moto refuses it on its own, before writing anything
        hash_key = DynamoType(key[table.hash_key_attr])
        range_key = None
        if table.range_key_attr is not None:
            if table.range_key_attr not in key:
                continue
            range_key = DynamoType(key[table.range_key_attr])
        touched.append((table, hash_key, range_key, copy.deepcopy(table.get_item(hash_key, range_key))))
    return touched


def _put_back(touched: list[Touched]) -> None:
    for table, hash_key, range_key, before in reversed(touched):
        if before is None:
            table.delete_item(hash_key, range_key)
        elif range_key is not None:
            table.items[hash_key][range_key] = before
        else:
            table.items[hash_key] = before  # type: ignore[assignment]


def _transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
    touched = _touched(self, transact_items)
    tables = {table for table, *_ in touched}
    for table in tables:  # moto's backup of the whole table: the table itself, left as it is
        table.__dict__["__deepcopy__"] = lambda memo, same=table: same
    try:
        _ORIGINAL(self, transact_items)
    except BaseException:
        _put_back(touched)
        raise
    finally:
        for table in tables:
            table.__dict__.pop("__deepcopy__", None)


@contextmanager
def item_rollback_transactions() -> Iterator[None]:
    """Within it, moto's transactions cost what they write, not what the table holds."""
    with mock.patch.object(DynamoDBBackend, "transact_write_items", _transact_write_items):
        yield
