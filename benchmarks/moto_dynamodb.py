"""A DynamoDB store on moto for the benchmarks, counting the requests it makes."""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


@contextmanager
def moto_store(table: str) -> Iterator[tuple[Any, Counter[str]]]:
    """A `DynamoDBStore` (not yet opened) on a fresh moto table, and a live count of its requests by operation."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ.setdefault(name, "testing")
    os.environ.pop("AWS_ENDPOINT_URL", None)
    import boto3
    from moto import mock_aws

    from chorus.store.dynamodb import DynamoDBStore
    from chorus.store.dynamodb_table import create_table

    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_table(client, table)
        calls: Counter[str] = Counter()
        client.meta.events.register("before-call.dynamodb.*", lambda model, **_: calls.update([model.name]))
        yield DynamoDBStore(client, table), calls
