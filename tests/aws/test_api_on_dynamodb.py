"""The app on the DynamoDB store, what only DynamoDB has: the store setting, run expiry (TTL), the table command.

The functional tests marked `both_stores` run on DynamoDB too (tests/conftest.py), so this module
holds only what has no SQLite counterpart.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
import pytest

from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_table import main as table_command
from chorus.store.factory import build_store
from chorus.store.records import RunRecord
from support import create_agent, create_group, parse_sse, payloads
from support.dynamodb import TABLE


async def _terminal(store: Store, run_id: str) -> RunRecord:
    """The run once it is terminal (its stream ends with `[DONE]` a moment before the record says so)."""
    for _ in range(500):
        run = await store.get_run("default", run_id)
        if run.is_terminal:
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never ended")


def test_settings_select_the_dynamodb_store(settings: Settings, dynamodb: Any) -> None:
    store = build_store(settings.model_copy(update={"store": "dynamodb", "table_name": TABLE}))
    assert isinstance(store, DynamoDBStore)
    assert store.table.name == TABLE and store.retention_s == settings.event_retention_s


async def test_an_expired_finished_run_answers_410(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    agent = await create_agent(client, "Ada", tokens=2)
    group = await create_group(client, [agent["id"]])
    live = parse_sse(
        (await client.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "hi", "background": True})).text
    )
    run_id = payloads(live)[0]["run_id"]
    run = await _terminal(store, run_id)
    assert run.expires_at is not None and run.expires_at > time.time()
    assert (await client.post(f"/v1/runs/{run_id}/stream", json={})).status_code == 200
    await store.update_run(run.model_copy(update={"expires_at": time.time() - 1}), expect_version=run.version)
    expired = await client.post(f"/v1/runs/{run_id}/stream", json={})
    assert expired.status_code == 410
    assert "expired" in expired.json()["detail"]


@pytest.mark.parametrize("retention_s", [60, 3600])
async def test_the_configured_retention_sets_the_run_expiry(make_app: Any, retention_s: int) -> None:
    app = make_app(settings={"event_retention_s": retention_s})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            agent = await create_agent(client, "Ada", tokens=1)
            group = await create_group(client, [agent["id"]])
            started = time.time()
            body = {"input": "x", "background": True}
            live = (await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)).text
            stored = await _terminal(app.state.services.store, payloads(parse_sse(live))[0]["run_id"])
    assert stored.expires_at is not None
    assert started + retention_s <= stored.expires_at <= time.time() + retention_s


def test_the_table_command_creates_the_table(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["dynamodb_table", "chorus-local"])
    table_command()
    assert "chorus-local" in dynamodb.list_tables()["TableNames"]
    ttl = dynamodb.describe_time_to_live(TableName="chorus-local")["TimeToLiveDescription"]
    assert ttl == {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires_at"}
