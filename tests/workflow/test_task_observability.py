"""The task handlers on Lambda: JSON logs keyed by run (the correlation id) and task, traced, and
failures raised under the names the state machine's Retry/Catch rules match."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from chorus.errors import InvalidModelResponse, ModelRateLimited, ModelTimeout, StorageUnavailable
from chorus.workflow.handlers import ModelFailed, ModelRetryable, TaskFailed, classify
from support.lambda_runtime import as_on_lambda
from support.workflow_harness import Harness


@pytest.fixture
def on_lambda(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")  # no X-Ray daemon here; the code path still runs
    with as_on_lambda(monkeypatch, "chorus-plan"):
        yield


async def test_a_failing_task_logs_json_tagged_with_its_run_and_task(
    harness: Harness, on_lambda: None, chorus_logs: pytest.CaptureFixture[str]
) -> None:
    event = {"tenant_id": "default", "run_id": "run-missing"}
    with pytest.raises(TaskFailed) as caught:
        await asyncio.to_thread(harness.handlers["plan"], event, None)
    detail = json.loads(str(caught.value))
    assert detail["stop_reason"] == "error" and detail["error_type"] == "internal_error"
    assert "NotFound" in detail["detail"]
    lines = [json.loads(line) for line in chorus_logs.readouterr().out.splitlines() if line.startswith("{")]
    (failure,) = [line for line in lines if line.get("message", "").startswith("plan task of run")]
    assert failure["correlation_id"] == "run-missing" and failure["run_id"] == "run-missing"
    assert failure["task"] == "plan" and failure["service"] == "chorus" and failure["level"] == "ERROR"


@pytest.mark.parametrize(
    ("error", "raised", "stop_reason"),
    [
        (ModelRateLimited("slow down"), ModelRetryable, "llm_api_error"),
        (ModelTimeout("late"), ModelRetryable, "llm_api_error"),
        (InvalidModelResponse("garbled"), ModelFailed, "invalid_llm_response"),
        (KeyError("x"), TaskFailed, "error"),
    ],
)
def test_failures_are_classified_for_retry_and_catch(
    error: Exception, raised: type[Exception], stop_reason: str
) -> None:
    out = classify(error)
    assert type(out) is raised and json.loads(str(out))["stop_reason"] == stop_reason


def test_storage_failures_keep_their_retryable_name() -> None:
    error = StorageUnavailable("Storage error: throttled")
    assert classify(error) is error
