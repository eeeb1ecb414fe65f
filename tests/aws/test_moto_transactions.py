"""The suites' faster moto transactions (`support.moto_transactions`) end exactly as moto's own:
the same error and cancellation reasons, and after a refused transaction the same table."""

from __future__ import annotations

from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from support.dynamodb import fake_aws_credentials
from support.moto_transactions import item_rollback_transactions

TABLE = "t"


def _client() -> Any:
    client = boto3.client("dynamodb", region_name="us-east-1")
    client.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": n, "AttributeType": "S"} for n in ("PK", "SK")],
        BillingMode="PAY_PER_REQUEST",
    )
    for sk, n in (("a", "1"), ("b", "2"), ("c", "3")):
        client.put_item(TableName=TABLE, Item={"PK": {"S": "p"}, "SK": {"S": sk}, "n": {"N": n}})
    return client


def _put(sk: str, n: str = "9") -> dict[str, Any]:
    return {"Put": {"TableName": TABLE, "Item": {"PK": {"S": "p"}, "SK": {"S": sk}, "n": {"N": n}}}}


def _key(sk: str) -> dict[str, Any]:
    return {"PK": {"S": "p"}, "SK": {"S": sk}}


REFUSED = [
    _put("new"),  # a new item
    {
        "Update": {
            "TableName": TABLE,
            "Key": _key("a"),
            "UpdateExpression": "SET n = :n",
            "ExpressionAttributeValues": {":n": {"N": "100"}},
        }
    },
    {"Delete": {"TableName": TABLE, "Key": _key("b")}},
    {"ConditionCheck": {"TableName": TABLE, "Key": _key("c"), "ConditionExpression": "attribute_not_exists(PK)"}},
]
TWICE = [_put("x"), _put("x", "8")]
APPLIED = [_put("new"), {"Delete": {"TableName": TABLE, "Key": _key("b")}}]


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch)


def _outcome(items: list[dict[str, Any]], fast: bool) -> tuple[str | None, Any, list[dict[str, Any]]]:
    with mock_aws():
        client = _client()
        error, reasons = None, None
        try:
            if fast:
                with item_rollback_transactions():
                    client.transact_write_items(TransactItems=items)
            else:
                client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            error, reasons = exc.response["Error"]["Code"], exc.response.get("CancellationReasons")
        rows = client.scan(TableName=TABLE)["Items"]
        return error, reasons, sorted(rows, key=lambda r: r["SK"]["S"])


@pytest.mark.parametrize("items", [REFUSED, TWICE, APPLIED], ids=["refused", "same-item-twice", "applied"])
def test_a_transaction_ends_as_in_moto_itself(aws: None, items: list[dict[str, Any]]) -> None:
    fast = _outcome(items, fast=True)
    assert fast == _outcome(items, fast=False)
    if items is REFUSED:
        assert fast[0] == "TransactionCanceledException"
        assert [r["SK"]["S"] for r in fast[2]] == ["a", "b", "c"] and fast[2][0]["n"] == {"N": "1"}
