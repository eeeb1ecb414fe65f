"""Powertools for AWS Lambda on the deployed API; nothing (no import, no AWS call) locally.

On Lambda (`AWS_LAMBDA_FUNCTION_NAME` is set) `create_app` turns on:

- **Logger** (service `chorus`): JSON lines on stdout for the `chorus` loggers, with the Lambda
  request id (`function_request_id`, read from the Web Adapter's
  `x-amzn-lambda-context` header or Mangum's context) and the `run_id` of the
  run whose driver logged (its asyncio task is named `run-<id>`).
- **Metrics** (EMF, namespace `POWERTOOLS_METRICS_NAMESPACE`, default
  `Chorus`), taken from what the store durably records, so no engine code
  knows about them: `RunsStarted`, `RunsCompleted`, `RunsFailed`,
  `RunsCancelled` (count), `Steps` (count of committed agent steps),
  `InputTokens`, `OutputTokens` (count), `TimeToFirstToken` (milliseconds).
  They are flushed after every request (and after a buffered invocation's
  runs finished); what a run records after its response ended goes out
  with the next flush.
- **Parameters**: `CHORUS_API_KEYS_PARAMETER` names an SSM SecureString
  (`key=tenant,…`) fetched with decryption and cached for `KEYS_MAX_AGE_S`,
  so a rotated key takes effect within that time without a redeploy.

- **Tracer** (X-Ray) on the run workflow's task functions: each task is a
  subsegment annotated with its run id, and boto3 (DynamoDB, Step Functions,
  Bedrock) and httpx (the OpenAI and Anthropic adapters) calls are traced
  inside it. The API function is not traced: under the Web Adapter the
  trace header reaches uvicorn as a request header, not as
  `_X_AMZN_TRACE_ID`, which the X-Ray SDK needs (see the README).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Callable
from functools import lru_cache
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:  # the task functions import this module and no web stack; the API builds its store later
    from starlette.types import ASGIApp, Receive, Scope, Send

    from chorus.store.base import Store
    from chorus.store.records import MessageRecord, RunRecord, StepRecord

SERVICE = "chorus"
"""The Logger's service: also the stdlib logger it configures, parent of every `chorus.*` logger."""
KEYS_MAX_AGE_S = 300
"""How long the API keys fetched from SSM are cached."""
RUN_TASK_PREFIX = "run-"
"""The executor names each run's task `run-<run id>` (`runs/executor.py`)."""


def enabled() -> bool:
    """True on Lambda: the runtime sets `AWS_LAMBDA_FUNCTION_NAME` (the Web Adapter passes it to uvicorn)."""
    return bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))


@lru_cache(maxsize=1)
def logger() -> Any:
    """The Powertools Logger. It owns the stdlib `chorus` logger, so every `chorus.*` module logs JSON through it."""
    from aws_lambda_powertools import Logger

    log = Logger(service=SERVICE)
    stdlib = logging.getLogger(SERVICE)
    stdlib.propagate = False  # the Lambda runtime's root handler would print each line again, as text
    for handler in stdlib.handlers:
        if not any(isinstance(f, RunIdFilter) for f in handler.filters):
            handler.addFilter(RunIdFilter())
    return log


@lru_cache(maxsize=1)
def tracer() -> Any:
    """The Powertools Tracer; creating it patches boto3, botocore and httpx for X-Ray."""
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


@lru_cache(maxsize=1)
def metrics() -> Any:
    from aws_lambda_powertools import Metrics

    return Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", "Chorus"))


def add_metric(name: str, unit: str, value: float) -> None:
    metrics().add_metric(name=name, unit=unit, value=value)


def flush_metrics() -> None:
    """Print the pending metrics as one EMF document (nothing when there are none)."""
    m = metrics()
    if m.metric_set:
        m.flush_metrics()


class RunIdFilter(logging.Filter):
    """Adds `run_id` to records logged from a run's driver task (named `run-<id>` by the executor)."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            task = asyncio.current_task()
        except RuntimeError:
            task = None
        if task is not None and task.get_name().startswith(RUN_TASK_PREFIX):
            record.run_id = task.get_name().removeprefix(RUN_TASK_PREFIX)
        return True


def lambda_request_id(scope: Scope) -> str | None:
    """The invocation's request id: Mangum's context, or the Web Adapter's `x-amzn-lambda-context` header."""
    context = scope.get("aws.context")
    if context is not None and getattr(context, "aws_request_id", None):
        return str(context.aws_request_id)
    for name, value in scope.get("headers", []):
        if name == b"x-amzn-lambda-context":
            try:
                request_id = json.loads(value).get("request_id")
            except (ValueError, AttributeError):
                return None
            return str(request_id) if request_id else None
    event = scope.get("aws.event")
    if isinstance(event, dict):
        request_id = event.get("requestContext", {}).get("requestId")
        return str(request_id) if request_id else None
    return None


class PowertoolsMiddleware:
    """Correlates logs with the Lambda request and flushes metrics when the response has ended."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log = logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = lambda_request_id(scope)
        if request_id:
            self.log.append_keys(function_request_id=request_id)
        try:
            await self.app(scope, receive, send)
        finally:
            self.log.remove_keys(["function_request_id"])
            flush_metrics()


class InstrumentedStore:
    """A `Store` that records run metrics from what is written through it; everything else is delegated."""

    def __init__(self, store: Store, record: Callable[[str, str, float], None] = add_metric) -> None:
        self._store = store
        self._record = record
        self._ended: set[str] = set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    async def put_run(self, run: RunRecord) -> None:
        await self._store.put_run(run)
        self._record("RunsStarted", "Count", 1)

    async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
        updated = await self._store.update_run(run, expect_version=expect_version)
        self._record_end(updated)
        return updated

    async def end_log(
        self, tenant_id: str, run_id: str, first_seq: int, events: list[str], end: Callable[[RunRecord], RunRecord]
    ) -> RunRecord:
        ended = await self._store.end_log(tenant_id, run_id, first_seq, events, end)
        self._record_end(ended)
        return ended

    def _record_end(self, updated: RunRecord) -> None:
        """Once per run, when a write made it terminal (an ending, or a sweep's record update)."""
        if updated.is_terminal and updated.id not in self._ended:
            if len(self._ended) > 10_000:
                self._ended.clear()
            self._ended.add(updated.id)
            name = {"completed": "RunsCompleted", "failed": "RunsFailed"}.get(updated.status, "RunsCancelled")
            self._record(name, "Count", 1)
            if updated.ttft_ns is not None:
                self._record("TimeToFirstToken", "Milliseconds", updated.ttft_ns / 1e6)

    async def commit_step(self, step: StepRecord, messages: list[MessageRecord]) -> None:
        await self._store.commit_step(step, messages)
        if step.agent_id is not None:
            self._record("Steps", "Count", 1)
            self._record("InputTokens", "Count", step.usage.get("prompt_tokens", 0))
            self._record("OutputTokens", "Count", step.usage.get("completion_tokens", 0))


def instrument(store: Store) -> Store:
    return cast("Store", InstrumentedStore(store))


def api_keys_loader(parameter_name: str) -> Callable[[], str]:
    """A function returning the SSM parameter's value, fetched with decryption and cached by Powertools."""

    def load() -> str:
        from aws_lambda_powertools.utilities.parameters import get_parameter

        return str(get_parameter(parameter_name, decrypt=True, max_age=KEYS_MAX_AGE_S))

    return load
