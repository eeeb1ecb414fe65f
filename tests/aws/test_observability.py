"""Powertools on the deployed API: JSON logs with request and run ids, EMF metrics, API keys from SSM.

Locally nothing of it runs (no `AWS_LAMBDA_FUNCTION_NAME`); these tests set
that variable as the Lambda runtime does, and read what Powertools prints.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus import observability
from chorus.store.records import RunRecord
from support.dynamodb import TABLE, dynamodb_store
from support.lambda_events import event, load_api_handler, seed
from support.lambda_runtime import as_on_lambda

PARAMETER = "/chorus/api-keys"


@pytest.fixture
def on_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    with as_on_lambda(monkeypatch, "chorus-api"):
        yield
    observability.metrics().clear_metrics()


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def _emf_metrics(lines: list[dict[str, Any]]) -> dict[str, list[float]]:
    """Metric name -> values, over every EMF document printed."""
    out: dict[str, list[float]] = {}
    for doc in lines:
        if "_aws" not in doc:
            continue
        assert doc["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "Chorus"
        for metric in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            value = doc[metric["Name"]]
            out.setdefault(metric["Name"], []).extend(value if isinstance(value, list) else [value])
    return out


def test_nothing_is_configured_locally() -> None:
    assert not observability.enabled()
    assert not [h for h in logging.getLogger("chorus").handlers if type(h).__module__.startswith("aws_lambda")]


def test_a_buffered_group_run_emits_run_metrics(
    on_lambda: None, dynamodb: Any, monkeypatch: pytest.MonkeyPatch, chorus_logs: pytest.CaptureFixture[str]
) -> None:
    asyncio.run(seed(dynamodb_store(dynamodb)))
    monkeypatch.setenv("CHORUS_STORE", "dynamodb")
    monkeypatch.setenv("CHORUS_TABLE_NAME", TABLE)
    handler = load_api_handler()
    try:
        chorus_logs.readouterr()
        result = handler(event("api-group-stream-background.json"), None)
        assert result["statusCode"] == 200
    finally:
        handler.close()
    metrics = _emf_metrics(_json_lines(chorus_logs.readouterr().out))
    assert metrics["RunsStarted"] == [1] and metrics["RunsCompleted"] == [1]
    assert "RunsFailed" not in metrics
    assert sum(metrics["Steps"]) == 2  # round robin: Ada, then Brook
    assert sum(metrics["InputTokens"]) > 0 and sum(metrics["OutputTokens"]) > 0
    assert len(metrics["TimeToFirstToken"]) == 1 and metrics["TimeToFirstToken"][0] >= 0


async def test_failed_and_cancelled_runs_are_counted_once() -> None:
    recorded: list[tuple[str, float]] = []

    class Fake:
        async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
            return run

    store = observability.InstrumentedStore(Fake(), lambda name, _unit, value: recorded.append((name, value)))  # type: ignore[arg-type]
    base = RunRecord(tenant_id="t", id="run-1", created_at="2026-11-24T06:33:05+00:00", agent_id="agent-1")
    for status in ("running", "failed", "failed"):
        await store.update_run(base.model_copy(update={"status": status}), expect_version=0)
    await store.update_run(base.model_copy(update={"id": "run-2", "status": "cancelled"}), expect_version=0)
    assert recorded == [("RunsFailed", 1), ("RunsCancelled", 1)]


async def test_logs_carry_the_lambda_request_id_and_the_run_id(
    on_lambda: None, chorus_logs: pytest.CaptureFixture[str]
) -> None:
    log = logging.getLogger("chorus.runs.driver")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        log.warning("inside the request")
        await asyncio.create_task(_log_in_run(), name="run-run-abc")  # a run's task, as the executor names it
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def _log_in_run() -> None:
        log.warning("inside the run")

    wrapped = observability.PowertoolsMiddleware(app)
    context = json.dumps({"request_id": "req-42", "invoked_function_arn": "arn:aws:lambda:us-east-1:1:function:f"})
    transport = httpx.ASGITransport(app=wrapped)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        response = await client.get("/v1/health", headers={"x-amzn-lambda-context": context})
    assert response.status_code == 204
    lines = {line["message"]: line for line in _json_lines(chorus_logs.readouterr().out) if "message" in line}
    assert lines["inside the request"]["function_request_id"] == "req-42"
    assert lines["inside the request"]["service"] == "chorus"
    assert "run_id" not in lines["inside the request"]
    assert lines["inside the run"]["run_id"] == "run-abc"
    assert lines["inside the run"]["function_request_id"] == "req-42"


@pytest.fixture
def ssm_keys(dynamodb: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The keys parameter on moto SSM (inside the DynamoDB fixture's mock), Powertools' cache emptied around it."""
    import boto3
    from aws_lambda_powertools.utilities import parameters

    ssm = boto3.client("ssm", region_name="us-east-1")
    ssm.put_parameter(Name=PARAMETER, Type="SecureString", Value="key-a=tenant-a, key-b=tenant-b")
    parameters.clear_caches()  # type: ignore[no-untyped-call]
    yield ssm
    parameters.clear_caches()  # type: ignore[no-untyped-call]


async def test_api_keys_from_ssm_scope_tenants_and_are_cached(ssm_keys: Any, make_app: Callable[..., FastAPI]) -> None:
    app = make_app(settings={"api_keys_parameter": PARAMETER})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:

            def auth(key: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {key}"}

            assert (await client.get("/v1/agents")).status_code == 401  # no anonymous tenant with a parameter
            assert (await client.get("/v1/agents", headers=auth("nope"))).status_code == 401
            created = await client.post(
                "/v1/agents", json={"name": "Ada", "model": "scripted/default"}, headers=auth("key-a")
            )
            assert created.status_code == 200, created.text
            agent_id = created.json()["id"]
            assert (await client.get(f"/v1/agents/{agent_id}", headers=auth("key-a"))).status_code == 200
            assert (await client.get(f"/v1/agents/{agent_id}", headers=auth("key-b"))).status_code == 404

            ssm_keys.put_parameter(Name=PARAMETER, Type="SecureString", Value="key-c=tenant-a", Overwrite=True)
            assert (await client.get("/v1/agents", headers=auth("key-a"))).status_code == 200  # cached
            from aws_lambda_powertools.utilities import parameters

            parameters.clear_caches()  # type: ignore[no-untyped-call]  # what KEYS_MAX_AGE_S does on its own
            assert (await client.get("/v1/agents", headers=auth("key-a"))).status_code == 401
            listed = await client.get("/v1/agents", headers=auth("key-c"))
            assert [a["id"] for a in listed.json()] == [agent_id]
