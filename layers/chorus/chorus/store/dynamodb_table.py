"""The DynamoDB table of the store: its definition, and creation for tests and local use.

`table_definition()` is the one description of the key schema (the SAM
template declares the same table): `PK`/`SK` strings, five sparse GSIs that
all range on `OSK` and project every attribute, TTL on `expires_at`,
on-demand billing.
"""

from __future__ import annotations

from typing import Any

from chorus.store.dynamodb_keys import INDEXES, ORDER_KEY, TTL_ATTRIBUTE


def table_definition(table_name: str) -> dict[str, Any]:
    """`CreateTable` arguments of the store's table."""
    attributes = ["PK", "SK", ORDER_KEY, *INDEXES.values()]
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": a, "AttributeType": "S"} for a in attributes],
        "KeySchema": [{"AttributeName": "PK", "KeyType": "HASH"}, {"AttributeName": "SK", "KeyType": "RANGE"}],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": attribute, "KeyType": "HASH"},
                    {"AttributeName": ORDER_KEY, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name, attribute in INDEXES.items()
        ],
    }


def create_table(client: Any, table_name: str) -> None:
    """Create the table (waiting until it is active) and turn TTL on; for tests and local endpoints."""
    client.create_table(**table_definition(table_name))
    client.get_waiter("table_exists").wait(TableName=table_name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    client.update_time_to_live(
        TableName=table_name, TimeToLiveSpecification={"Enabled": True, "AttributeName": TTL_ATTRIBUTE}
    )


def main() -> None:
    """`python -m chorus.store.dynamodb_table [name]`: create the table where boto3 points (e.g. `AWS_ENDPOINT_URL`)."""
    import sys

    import boto3

    from chorus.settings import get_settings

    name = sys.argv[1] if len(sys.argv) > 1 else get_settings().table_name
    create_table(boto3.client("dynamodb"), name)
    print(f"created DynamoDB table {name}")


if __name__ == "__main__":
    main()
