"""A DynamoDB store on moto for the contract and AWS suites: one fresh table per test."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.responses import DynamoHandler

from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_table import create_table
from support.moto_transactions import item_rollback_transactions

TABLE = "chorus-test"
SESSION = boto3.Session(aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1")
"""One session for every test's client: creating a client from a warm session takes milliseconds."""


def fake_aws_credentials(monkeypatch: pytest.MonkeyPatch, region: str = "us-east-1") -> None:
    """Credentials moto accepts, and no endpoint override: boto3 must never reach a real AWS account."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": region,
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@contextmanager
def moto_dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB client with the store's table.

    moto's in-memory backend checks a condition and writes in two Python steps, so
    two threads could both pass one condition; DynamoDB applies each request
    atomically. A lock around moto's request handler gives the same guarantee
    here, so the race tests prove the adapter's conditions, not moto's threading.
    """
    fake_aws_credentials(monkeypatch)
    lock = threading.RLock()
    original = DynamoHandler.call_action

    def atomic(self: DynamoHandler) -> Any:
        with lock:
            return original(self)

    with mock_aws(), mock.patch.object(DynamoHandler, "call_action", atomic), item_rollback_transactions():
        client = SESSION.client("dynamodb")
        create_table(client, TABLE)
        yield client


def dynamodb_store(client: Any, **options: Any) -> DynamoDBStore:
    return DynamoDBStore(client, TABLE, **options)


def count_calls(client: Any) -> Counter[str]:
    """A counter of the client's API calls by operation name, from now on."""
    calls: Counter[str] = Counter()

    def hook(model: Any, **_: Any) -> None:
        calls[model.name] += 1

    client.meta.events.register("before-call.dynamodb.*", hook)
    return calls


@contextmanager
def lost_responses(client: Any, operation: str) -> Iterator[None]:
    """Every `operation` call lands and is sent again, as boto3 re-sends a request whose response was lost."""
    original = getattr(client, operation)

    def landed_then_lost(**kwargs: Any) -> Any:
        original(**kwargs)  # the first attempt lands...
        return original(**kwargs)  # ...and the re-send meets what it wrote

    setattr(client, operation, landed_then_lost)
    try:
        yield
    finally:
        delattr(client, operation)
