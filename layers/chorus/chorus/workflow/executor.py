"""`StepFunctionsExecutor`: background runs as executions of the run state machine.

An execution is named after its run (`run_id`, then `run_id-2`, … for the
continuations of a long run), so starting a run twice starts it once: Step
Functions answers a repeated name with the same execution or
`ExecutionAlreadyExists`, both fine here. Cancelling stops the execution
and ends the run right away (the cancel flag is set first, so a task still
running sees it within a heartbeat, and a closed log refuses its writes).
A sweep ends runs whose execution died without reaching Finish (a failed
Finish, a timeout, an execution stopped by hand).

With `CHORUS_WORKFLOW_START=invoke` a run starts instead as an async
invocation of the Plan function, which runs it alone until it needs an
execution (see `chorus.workflow.direct`); the sweep hands over a direct run
whose every attempt died.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from datetime import datetime
from typing import Any

import orjson

from chorus.errors import Conflict, StorageUnavailable
from chorus.runs.lease import Lease
from chorus.runs.recovery import end_poisoned
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import RunRecord
from chorus.vocabulary import RunFailure
from chorus.workflow.direct import (
    DIRECT_GRACE_S,
    FIRST_OWNER,
    deaths_before,
    hand_over,
    handed_over,
    new_first_owner,
)
from chorus.workflow.state import DEFAULT_HISTORY_BUDGET, WorkflowInput, execution_name
from chorus.workflow.tasks import finalize

logger = logging.getLogger(__name__)

MAX_GENERATIONS = 10_000
"""How many continuations a run may have (a bound for the lookup of its current execution)."""


class StepFunctionsExecutor:
    def __init__(
        self,
        client: Any,
        state_machine_arn: str,
        store: Store,
        settings: Settings,
        *,
        history_budget: int = DEFAULT_HISTORY_BUDGET,
        lambda_client: Any = None,
    ) -> None:
        self.client = client
        """A boto3 `stepfunctions` client."""
        self.state_machine_arn = state_machine_arn
        self.store = store
        self.settings = settings
        self.history_budget = history_budget
        self.lambda_client = lambda_client
        """A boto3 `lambda` client, to start runs directly (`workflow_start=invoke`)."""
        self.direct_grace_s = DIRECT_GRACE_S

    async def start(self, run: RunRecord) -> None:
        state = self.first_input(run)
        if self.settings.workflow_start == "invoke":
            await self.invoke_plan(state, run.lease_owner)
        else:
            await self.start_execution(state)

    def first_owner(self) -> str | None:
        """A direct run is created held by the lease its first attempt drives it under (`FIRST_OWNER`)."""
        return new_first_owner() if self.settings.workflow_start == "invoke" else None

    def first_input(self, run: RunRecord) -> WorkflowInput:
        """The input of the run's first execution (or of its direct Plan, which adds `direct`)."""
        return WorkflowInput(
            tenant_id=run.tenant_id, run_id=run.id, history_budget=self.history_budget, traceparent=run.traceparent
        )

    async def invoke_plan(self, state: WorkflowInput, first_owner: str | None = None) -> None:
        """Hand the run to the Plan function asynchronously (Lambda queues the event and retries it),
        with the lease owner the run was created held by, if any, for its first attempt."""
        held = {FIRST_OWNER: first_owner} if first_owner is not None else {}
        body = orjson.dumps({**state.model_dump(mode="json"), "direct": True, **held})
        try:
            response = await asyncio.to_thread(
                self.lambda_client.invoke,
                FunctionName=self.settings.plan_function,
                InvocationType="Event",
                Payload=body,
            )
        except Exception as exc:
            raise StorageUnavailable(f"Lambda refused to start run {state.run_id}: {exc}") from exc
        if response.get("StatusCode") != 202:
            raise StorageUnavailable(f"Lambda did not queue run {state.run_id}: status {response.get('StatusCode')}")

    async def start_execution(self, state: WorkflowInput) -> None:
        """Start the named execution; one already started under that name is the same run."""
        name = execution_name(state.run_id, state.generation)
        body = orjson.dumps(state.model_dump(mode="json")).decode()
        try:
            await asyncio.to_thread(
                self.client.start_execution, stateMachineArn=self.state_machine_arn, name=name, input=body
            )
        except Exception as exc:
            if _code(exc) == "ExecutionAlreadyExists":
                logger.info("execution %s was started before; not starting it again", name)
                return
            raise StorageUnavailable(f"Step Functions refused to start run {state.run_id}: {exc}") from exc

    def execution_arn(self, name: str) -> str:
        prefix, _, machine = self.state_machine_arn.partition(":stateMachine:")
        return f"{prefix}:execution:{machine}:{name}"

    async def current(self, run_id: str) -> dict[str, Any] | None:
        """`DescribeExecution` of the run's latest execution (None if it never started)."""
        latest = None
        for generation in range(1, MAX_GENERATIONS + 1):
            arn = self.execution_arn(execution_name(run_id, generation))
            try:
                latest = await asyncio.to_thread(self.client.describe_execution, executionArn=arn)
            except Exception as exc:
                if _code(exc) == "ExecutionDoesNotExist":
                    return latest
                raise StorageUnavailable(f"Step Functions could not describe {arn}: {exc}") from exc
        return latest

    async def cancel(self, run: RunRecord) -> RunRecord:
        """Stop the run's execution and end the run `cancelled` (its cancel flag is already set)."""
        execution = await self.current(run.id)
        if execution is not None and execution["status"] == "RUNNING":
            try:
                await asyncio.to_thread(
                    self.client.stop_execution,
                    executionArn=execution["executionArn"],
                    error="Cancelled",
                    cause=f"run {run.id} was cancelled",
                )
            except Exception as exc:
                raise StorageUnavailable(f"Step Functions could not stop run {run.id}: {exc}") from exc
        return await finalize(self.store, self.settings, run, "cancelled", None)

    async def reconcile(self, run: RunRecord) -> bool:
        """End a run whose execution is over but which is not terminal; True if it did. A run without
        an execution, started directly, is handed over to one once its attempts are surely over."""
        run = await self.store.get_run(run.tenant_id, run.id)
        execution = None if run.is_terminal else await self.current(run.id)
        if not run.is_terminal and execution is None:
            return await self._adopt_direct(run)
        if run.is_terminal or execution is None or execution["status"] in ("RUNNING", "SUCCEEDED"):
            # running, or succeeded (its Finish ran, or it continued in a successor that `current` found)
            return False
        status = str(execution["status"])
        logger.warning("run %s: its execution ended %s before finishing the run; ending it", run.id, status)
        error = RunFailure("internal_error", f"The run's workflow ended: {status}.", status)
        await finalize(self.store, self.settings, run, "error", error)
        return True

    async def _adopt_direct(self, run: RunRecord) -> bool:
        """Hand over a run that has no execution: one a direct Plan handed over before its execution
        started, or one whose lease (never taken: whose start) is older than `direct_grace_s`, the
        end of Lambda's retries. The write is conditional on the run as read: an attempt that took
        the lease meanwhile keeps it, and one that comes later finds the run handed over. A run
        whose attempts all died on the same step, `max_run_attempts` of them, is ended instead
        (True), as the in-process recovery ends it."""
        if not handed_over(run):
            since = max(run.lease_expires_at, datetime.fromisoformat(run.created_at).timestamp())
            if run.lease_expires_at > time.time() or time.time() - since < self.direct_grace_s:
                return False
            deaths = await deaths_before(self.store, run)
            if deaths is not None and deaths.count >= self.settings.max_run_attempts:
                last = await self.store.last_seq(run.tenant_id, run.id)
                sweeper = Lease(owner=f"sweep-{uuid.uuid4()}", ttl_s=self.settings.lease_ttl_s)
                return await end_poisoned(self.store, self.settings, run, last, deaths, sweeper)
            try:
                run = await self.store.update_run(hand_over(run), expect_version=run.version)
            except Conflict:
                return False
            logger.warning("run %s: no attempt of its direct start is left; handing it to an execution", run.id)
        await self.start_execution(self.first_input(run))
        return False


def remote_executor(settings: Settings, store: Store) -> StepFunctionsExecutor | None:
    """The executor `settings` ask for: None for in-process, else Step Functions (boto3 imported here)."""
    if settings.executor != "stepfunctions":
        return None
    if not settings.state_machine_arn:
        raise ValueError("CHORUS_EXECUTOR=stepfunctions needs CHORUS_STATE_MACHINE_ARN")
    if settings.workflow_start == "invoke" and not settings.plan_function:
        raise ValueError("CHORUS_WORKFLOW_START=invoke needs CHORUS_PLAN_FUNCTION")
    import boto3

    return StepFunctionsExecutor(
        boto3.client("stepfunctions"),
        settings.state_machine_arn,
        store,
        settings,
        history_budget=settings.workflow_history_budget,
        lambda_client=boto3.client("lambda") if settings.workflow_start == "invoke" else None,
    )


def _code(exc: Exception) -> str | None:
    """A botocore `ClientError`'s error code (botocore stays an import of the AWS extra only)."""
    response = getattr(exc, "response", None)
    return response.get("Error", {}).get("Code") if isinstance(response, dict) else None
