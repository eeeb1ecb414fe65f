"""TTL on the DynamoDB store: log items carry `expires_at`, and readers skip expired ones themselves.

TTL deletion lags on AWS and never happens on moto, so an expired log record
must be invisible without it; what answers 410 is the run's own `expires_at`
(see test_api_on_dynamodb.py).
"""

from __future__ import annotations

import time
from typing import Any

from chorus.store.dynamodb import DynamoDBStore
from chorus.store.records import RunRecord, StepRecord
from support.dynamodb import TABLE


async def test_log_items_carry_a_ttl_of_retention_plus_slack(dynamodb: Any) -> None:
    store = DynamoDBStore(dynamodb, TABLE, retention_s=3600, log_ttl_slack_s=600)
    await store.open()
    started = time.time()
    await store.append_events("t1", "run-1", 1, ["a", "b"])
    run = RunRecord(tenant_id="t1", id="run-1", created_at="2026-01-01T00:00:00+00:00", agent_id="agent-1")
    await store.commit_step(
        StepRecord(tenant_id="t1", id="step-1", created_at=run.created_at, run_id=run.id, step_key="0001"), []
    )
    items = dynamodb.query(
        TableName=TABLE, KeyConditionExpression="PK = :pk", ExpressionAttributeValues={":pk": {"S": "T#t1#RUN#run-1"}}
    )["Items"]
    assert {i["SK"]["S"] for i in items} == {"E#000000000001", "STEP#0001"}
    for item in items:
        assert started + 4200 - 1 <= float(item["expires_at"]["N"]) <= time.time() + 4200
    await store.close()


async def test_expired_log_records_are_not_read(dynamodb: Any) -> None:
    expired = DynamoDBStore(dynamodb, TABLE, retention_s=0, log_ttl_slack_s=-10)
    await expired.open()
    await expired.append_events("t1", "run-1", 1, ["old"])
    assert await expired.read_events("t1", "run-1", 0, 10) == []
    fresh = DynamoDBStore(dynamodb, TABLE)
    await fresh.open()
    await fresh.append_events("t1", "run-1", 2, ["new"])
    assert await fresh.read_events("t1", "run-1", 0, 10) == [(2, "new")]
    assert await fresh.last_seq("t1", "run-1") == 2
    await expired.close()
    await fresh.close()
