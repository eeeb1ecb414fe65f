"""The functional suites' streaming, background, resume, cancel and history tests, on the DynamoDB store.

The tests are the functional ones, imported; `make_app` (conftest.py) builds
the app on moto, so each proves the same behaviour end to end on DynamoDB.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
import pytest
from test_active_run_limit import limited, test_concurrent_sends_beyond_the_limit_are_429
from test_durable_runs import (
    api,
    test_async_send_returns_the_run_at_once_and_resume_replays_it,
    test_background_stream_equals_its_resume,
    test_cancel_a_background_run,
    test_cancel_by_agent_and_by_run_ids,
    test_delete_run,
    test_idempotency_key_maps_to_one_run,
    test_idempotent_streaming_retry_replays_from_the_start_or_last_event,
    test_one_active_run_per_group,
    test_resume_errors,
    test_runs_listing_filters,
    test_server_start_recovers_orphaned_runs,
)
from test_group_messages import (
    test_history_persists_and_next_run_sees_it,
    test_include_return_message_types_filters_and_keeps_seq_gapless,
    test_round_robin_streams_each_agent_in_order,
    test_token_streaming_chunks_share_the_message_id,
)
from test_resources import (
    test_agent_crud_round_trip,
    test_agent_list_pagination,
    test_group_crud_round_robin_default,
)

from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_table import main as table_command
from chorus.store.factory import build_store
from chorus.store.records import RunRecord
from dynamodb_support import TABLE
from support import create_agent, create_group, parse_sse, payloads

__all__ = [
    "api",
    "limited",
    "test_agent_crud_round_trip",
    "test_agent_list_pagination",
    "test_async_send_returns_the_run_at_once_and_resume_replays_it",
    "test_background_stream_equals_its_resume",
    "test_cancel_a_background_run",
    "test_cancel_by_agent_and_by_run_ids",
    "test_concurrent_sends_beyond_the_limit_are_429",
    "test_delete_run",
    "test_group_crud_round_robin_default",
    "test_history_persists_and_next_run_sees_it",
    "test_idempotency_key_maps_to_one_run",
    "test_idempotent_streaming_retry_replays_from_the_start_or_last_event",
    "test_include_return_message_types_filters_and_keeps_seq_gapless",
    "test_one_active_run_per_group",
    "test_resume_errors",
    "test_round_robin_streams_each_agent_in_order",
    "test_runs_listing_filters",
    "test_server_start_recovers_orphaned_runs",
    "test_token_streaming_chunks_share_the_message_id",
]


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
