"""Lambda entry points of the run workflow's tasks (`functions/plan|step|finish/handler.py`).

A task handler is synchronous, as the Python runtime wants: it runs the
task on a fresh event loop, against a store and a Step Functions client
built once per execution environment from the same `CHORUS_*` settings as
the API. On Lambda, the Powertools Logger tags every line with the task and
the run (the run id is the correlation id), the Tracer records the task as
an X-Ray subsegment around its store and model calls, and metrics are
flushed after each invocation.

Failures leave as exceptions whose *class names* the state machine matches
in its Retry and Catch rules (the runtime reports them as `errorType`):

- `ModelRetryable`: the model was rate limited or timed out; retried with backoff;
- `StorageUnavailable`: the store failed past its own backoff; retried;
- `ModelFailed`: the model failed for good; caught, the run ends with its stop reason;
- `TaskFailed`: anything else (a bug, a mismatch); caught, the run ends `error`.

Their message is the JSON Finish reads back (`tasks.task_error`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

from chorus import observability, snapstart
from chorus.errors import ModelError, StorageUnavailable
from chorus.llm.resolve import resolve_model
from chorus.runs.finisher import error_type_of
from chorus.settings import Settings, get_settings
from chorus.store.base import Store
from chorus.store.factory import build_store
from chorus.store.records import AgentRecord
from chorus.tracing import task_span, tracer
from chorus.workflow.direct import plan_direct
from chorus.workflow.executor import remote_executor
from chorus.workflow.inline import plan_inline
from chorus.workflow.tasks import Workflow, task_error

logger = logging.getLogger(__name__)

Task = Literal["plan", "step", "finish"]


class ModelRetryable(Exception):
    """The model was rate limited or timed out: worth another attempt after a backoff."""


class ModelFailed(Exception):
    """The model failed in a way a retry does not fix."""


class TaskFailed(Exception):
    """Anything else that stopped a task."""


RETRYABLE_ERRORS = (ModelRetryable.__name__, StorageUnavailable.__name__)
"""Error names the state machine retries with backoff (besides Lambda's own)."""


def classify(exc: BaseException) -> Exception:
    """The exception a failed task raises to its state machine."""
    if isinstance(exc, StorageUnavailable):
        return exc
    if isinstance(exc, ModelError):
        message = task_error(exc.stop_reason, error_type_of(exc), exc.detail)
        return ModelRetryable(message) if exc.retryable else ModelFailed(message)
    return TaskFailed(task_error("error", "internal_error", f"{type(exc).__name__}: {exc}"))


def resolve(agent: AgentRecord) -> Any:
    return resolve_model(agent.model, agent.metadata)


@dataclass(slots=True)
class Environment:
    """What one execution environment keeps between invocations."""

    store: Store
    workflow: Workflow


PUBLISHED_ALIAS = "live"
"""The alias every task function publishes (the template's `AutoPublishAlias`): what the state
machine and the API invoke, the version SnapStart restores."""


def build_environment(settings: Settings, task: Task | None = None) -> Environment:
    if task == "plan" and settings.workflow_start == "invoke" and not settings.plan_function:
        settings = settings.model_copy(update={"plan_function": own_alias()})
    store = build_store(settings)
    if observability.enabled():
        store = observability.instrument(store)
    asyncio.run(store.open())
    remote = remote_executor(settings, store)
    workflow = Workflow(
        store,
        settings,
        resolve,
        remote.start_execution if remote is not None else None,
        start_run=remote.start if remote is not None else None,
    )
    return Environment(store, workflow)


def own_alias() -> str | None:
    """The Plan function's own alias, for the runs it starts directly: the template cannot name a
    function's alias in that function's environment (a circular reference), Lambda names the function."""
    name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
    return f"{name}:{PUBLISHED_ALIAS}" if name else None


class TaskHandler:
    """`handler(event, context)` for one task of the run workflow."""

    def __init__(self, task: Task) -> None:
        self.task = task
        self.environment: Environment | None = None
        snapstart.register_task_hooks()  # on Lambda: warmed before a SnapStart snapshot, reseeded after restore

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if self.environment is None:
            self.environment = build_environment(get_settings(), self.task)
        workflow = self.environment.workflow
        work = {"plan": workflow.plan, "step": workflow.step, "finish": workflow.finish}[self.task]
        if self.task == "plan" and workflow.settings.workflow_inline_s > 0:
            work = functools.partial(plan_inline, workflow, budget_s=workflow.settings.workflow_inline_s)
        if self.task == "plan" and event.get("direct") is True:  # invoked by the API, not an execution
            work = functools.partial(
                plan_direct, workflow, budget_s=workflow.settings.workflow_inline_s, caught=classify
            )
        with _tagged(self.task, event, context), _traced(self.task, event):
            try:
                return asyncio.run(work(event))
            except Exception as exc:
                logger.exception("%s task of run %s failed", self.task, event.get("run_id"))
                raise classify(exc) from exc

    def reset(self) -> None:
        """Forget the environment (tests that change the settings or the table between cases)."""
        if self.environment is not None:
            asyncio.run(self.environment.store.close())
            self.environment = None


@contextlib.contextmanager
def _traced(task: Task, event: dict[str, Any]) -> Iterator[None]:
    """The task's span in the run's trace; exported before the invocation returns (Lambda freezes after)."""
    traceparent = event.get("traceparent")
    try:
        with tracer().span(*task_span(task, event), parent=traceparent if isinstance(traceparent, str) else None):
            yield
    finally:
        tracer().flush()


@contextlib.contextmanager
def _tagged(task: Task, event: dict[str, Any], context: Any) -> Iterator[None]:
    if not observability.enabled():
        yield
        return
    log = observability.logger()
    log.set_correlation_id(event.get("run_id"))
    log.append_keys(task=task, run_id=event.get("run_id"))
    if context is not None:
        log.append_keys(function_request_id=getattr(context, "aws_request_id", None))
    try:
        with observability.tracer().provider.in_subsegment(f"## {task}") as segment:
            segment.put_annotation("run_id", str(event.get("run_id")))
            segment.put_annotation("task", task)
            yield
    finally:
        observability.flush_metrics()
        log.remove_keys(["task", "run_id", "function_request_id"])
