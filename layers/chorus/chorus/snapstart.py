"""Lambda SnapStart: prepare an environment before Lambda snapshots it, repair what a restore copies.

With SnapStart (the template's `SnapStart=PublishedVersions`), Lambda
initialises a published version once, snapshots the memory of that
environment and starts every new environment of the version from the
snapshot. Two kinds of state matter:

- **Work worth doing once, before the snapshot**: imports and the parsing of
  AWS service models, which restored environments then never pay.
  `warm_tasks` (the Plan, Step and Finish functions) imports the workflow and
  loads the models of the clients a task builds; `warm_api` (the API) includes
  every route module, which the app otherwise does on first use.
- **State every restored copy would share**: the `random` module's state
  (retry jitter; OpenTelemetry's trace and span ids, which would repeat across
  environments), the API worker's lease owner id (two environments holding
  one id would each take the other's run leases for their own) and open
  connections (the API's recovery sweep has used DynamoDB before the
  snapshot; a restored socket is dead). `after_restore` reseeds, and
  `fresh_worker` gives the API's run service a new owner id; the API closes
  its DynamoDB connection pool before the snapshot, and boto3 opens new
  connections when next asked.

The task functions register these with the Python runtime's hooks
(`snapshot_restore_py`, present only on Lambda); the API runs under the Lambda
Web Adapter in a process of its own, so the adapter relays the hooks to it as
`POST` requests (`AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH`,
`AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH`); it refuses those paths (403) to any
caller from outside, and the app only serves them on Lambda when they are
configured.
"""

from __future__ import annotations

import importlib
import logging
import os
import random
import uuid
from collections.abc import Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from chorus import tracing

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chorus.runs.service import RunService

logger = logging.getLogger(__name__)

BEFORE_PATH = "AWS_LWA_SNAPSTART_BEFORE_CHECKPOINT_PATH"
AFTER_PATH = "AWS_LWA_SNAPSTART_AFTER_RESTORE_PATH"
TASK_MODULES = ("chorus.workflow.tasks", "chorus.workflow.executor", "chorus.llm.resolve", "chorus.store.dynamodb")
"""What a task imports on its first invocation, imported before the snapshot instead."""
SDK_MODULES = ("openai", "anthropic", "chorus.llm.openai", "chorus.llm.anthropic", "chorus.llm.bedrock")
"""The provider adapters, imported before the snapshot when their extra is installed."""
TASK_CLIENTS = ("dynamodb", "stepfunctions", "bedrock-runtime", "lambda")
"""AWS clients whose service models are parsed before the snapshot (the clients themselves are not kept)."""


def after_restore() -> None:
    """Reseed `random` from the OS (every restored environment starts from the snapshot's state)."""
    random.seed()


def warm_tasks() -> None:
    """Import what a workflow task needs (tracing's SDK too, when on) and parse its AWS clients' models,
    opening no connection."""
    _import(TASK_MODULES + SDK_MODULES)
    tracing.tracer()
    try:
        import boto3
    except ImportError:
        return
    for service in TASK_CLIENTS:
        try:
            boto3.client(service)  # botocore caches the parsed model; the client is dropped unused
        except Exception as exc:  # a warm-up that fails must not fail the snapshot: the task builds it later
            logger.warning("could not prepare the %s client before the snapshot: %s", service, exc)


def register_task_hooks() -> bool:
    """Register `warm_tasks` and `after_restore` with the Python runtime; False off Lambda (no hooks library)."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    register_before_snapshot(warm_tasks)
    register_after_restore(after_restore)
    return True


def warm_api(app: FastAPI) -> None:
    """Include every route module, build the models they defer (the OpenAPI document needs each one's
    schema), import the provider adapters and close the DynamoDB connections."""
    app.state.routes.load_all()
    app.openapi()
    _import(SDK_MODULES)
    tracing.tracer()
    services = getattr(app.state, "services", None)
    client = getattr(getattr(getattr(services, "store", None), "table", None), "client", None)
    close = getattr(client, "close", None)
    if callable(close):
        close()  # botocore reopens its pool on the next call


def fresh_worker(runs: RunService) -> None:
    """Give the run service an owner id of its own (its lease, and its recovery's, are the same object)."""
    lease = replace(runs.lease, owner=f"worker-{uuid.uuid4()}")
    runs.lease = lease
    runs.recovery.lease = lease


def install_api_hooks(app: FastAPI, environ: Mapping[str, str] = os.environ) -> bool:
    """Serve the adapter's hook paths (only when both are configured); False when they are not."""
    before, after = environ.get(BEFORE_PATH), environ.get(AFTER_PATH)
    if not before or not after:
        return False
    from starlette.requests import Request
    from starlette.responses import Response

    async def before_snapshot(request: Request) -> Response:
        warm_api(app)
        return Response(status_code=204)

    async def restored(request: Request) -> Response:
        after_restore()
        services = getattr(app.state, "services", None)
        if services is not None:
            fresh_worker(services.runs)
        return Response(status_code=204)

    app.add_route(before, before_snapshot, methods=["POST"], include_in_schema=False)
    app.add_route(after, restored, methods=["POST"], include_in_schema=False)
    return True


def _import(names: tuple[str, ...]) -> None:
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            logger.debug("not warmed before the snapshot: %s (%s)", name, exc)


__all__ = [
    "after_restore",
    "fresh_worker",
    "install_api_hooks",
    "register_task_hooks",
    "warm_api",
    "warm_tasks",
]
