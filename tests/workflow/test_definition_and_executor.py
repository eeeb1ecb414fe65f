"""The definition's own consistency, and `StepFunctionsExecutor` against moto's Step Functions.

moto only checks a definition's syntax (a `Next` to a missing state passes),
so this checks the graph: every transition names a state, every task is
caught into Finish, and the error names the handlers raise are the ones the
Retry rules list.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest

from chorus.clock import now_iso
from chorus.settings import Settings
from chorus.store.records import RunRecord
from chorus.workflow.executor import StepFunctionsExecutor, remote_executor
from chorus.workflow.handlers import RETRYABLE_ERRORS, ModelFailed, TaskFailed
from chorus.workflow.state import WorkflowInput, execution_name
from support import create_agent, create_group
from support.workflow_harness import DEFINITION, Harness, substituted


def states() -> dict[str, Any]:
    result: dict[str, Any] = {}

    def walk(machine: dict[str, Any]) -> None:
        for name, state in machine["States"].items():
            result[name] = state
            if "ItemProcessor" in state:
                walk(state["ItemProcessor"])

    walk(json.loads(substituted(DEFINITION.read_text())))
    return result


def test_every_transition_names_a_state_and_every_state_is_reached() -> None:
    machine = json.loads(substituted(DEFINITION.read_text()))
    every = states()
    targets = {machine["StartAt"], every["Steps"]["ItemProcessor"]["StartAt"]}
    for state in every.values():
        targets |= {state.get("Next"), state.get("Default")} - {None}
        targets |= {c["Next"] for c in state.get("Choices", []) + state.get("Catch", [])}
    assert targets <= set(every), targets - set(every)
    assert set(every) <= targets, f"unreachable: {set(every) - targets}"


def test_every_task_is_caught_into_finish_and_retries_only_what_is_worth_retrying() -> None:
    every = states()
    for name in ("Plan", "Steps"):
        assert every[name]["Catch"] == [{"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "Finish"}]
    assert every["Finish"]["Catch"][0]["Next"] == "Unfinished" and every["Unfinished"]["Type"] == "Fail"
    retried = {e for rule in every["Step"]["Retry"] for e in rule["ErrorEquals"]}
    assert set(RETRYABLE_ERRORS) <= retried
    assert not {ModelFailed.__name__, TaskFailed.__name__, "States.ALL"} & retried
    for task in ("Plan", "Step", "Finish"):
        assert "Lambda.TooManyRequestsException" in {e for r in every[task]["Retry"] for e in r["ErrorEquals"]}
    assert every["Steps"]["MaxConcurrencyPath"] == "$.max_concurrency" and every["Steps"]["ResultPath"] is None


def executor(h: Harness) -> StepFunctionsExecutor:
    remote = h.app.state.services.runs.remote
    assert isinstance(remote, StepFunctionsExecutor)
    return remote


async def test_starting_a_run_twice_starts_one_execution(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=1)
    group = await create_group(h.client, [ada["id"]])
    response = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
    run = await h.store.get_run("default", response.json()["id"])
    await executor(h).start(run)  # a duplicate start: same name, same input
    await h.settle()
    await executor(h).start(run)  # after it finished: ExecutionAlreadyExists, handled
    executions = h.executions()
    assert [e["name"] for e in executions] == [run.id]
    assert h.faults.count("finish") == 1


async def test_continuations_are_found_as_the_runs_current_execution(harness: Harness) -> None:
    h = harness
    remote = executor(h)
    assert await remote.current("run-none") is None
    for generation in (1, 2):
        name = execution_name("run-x", generation)
        h.sfn.start_execution(stateMachineArn=h.state_machine_arn, name=name, input=json.dumps({"bad": 1}))
    await h.settle()
    current = await remote.current("run-x")
    assert current is not None and current["name"] == "run-x-2"


async def test_stop_execution_of_a_run_that_never_finished_is_reconciled(harness: Harness) -> None:
    """An execution stopped by hand (no cancel through the API): the sweep ends its run."""
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=200, delay_s=0.01)
    group = await create_group(h.client, [ada["id"]])
    run_id = (await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})).json()["id"]
    remote = executor(h)
    while (current := await remote.current(run_id)) is None or h.faults.count("step") == 0:
        pass
    h.sfn.stop_execution(executionArn=current["executionArn"])
    await h.settle()
    run = await h.store.get_run("default", run_id)
    assert run.status == "running"
    assert await h.app.state.services.runs.recover() == 1
    ended = await h.store.get_run("default", run_id)
    assert ended.status == "failed" and ended.stop_reason == "error"
    rows = await h.store.read_events("default", run_id, 0, 10_000)
    error = json.loads(rows[-2][1])
    assert error["message_type"] == "error_message" and "The run's workflow ended" in error["message"]
    assert not await remote.reconcile(run), "a run already ended is left alone"


async def test_a_run_that_cannot_be_started_is_ended_and_the_group_released(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=1)
    group = await create_group(h.client, [ada["id"]])
    remote = executor(h)
    monkeypatch.setattr(remote, "state_machine_arn", remote.state_machine_arn.replace("chorus-run", "missing"))
    response = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
    assert response.status_code == 503 and "Step Functions" in response.json()["detail"]
    runs = (await h.client.get("/v1/runs")).json()
    assert [(r["status"], r["stop_reason"]) for r in runs] == [("failed", "error")]
    # its log ends as every run's does: a resume replays the error and [DONE]
    resumed = [json.loads(data) for _, data in (await h.store.read_events("default", runs[0]["id"], 0, 10))[:-1]]
    assert [e["message_type"] for e in resumed] == ["stop_reason", "error_message"]
    assert "Step Functions" in resumed[1]["message"]
    assert (await h.store.read_events("default", runs[0]["id"], 2, 1))[0][1] == "[DONE]"
    monkeypatch.undo()
    assert (await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})).status_code == 200


def test_start_input_is_the_plan_input() -> None:
    run = RunRecord(tenant_id="t", id="run-1", created_at=now_iso(), agent_id="agent-1", background=True)
    assert WorkflowInput(tenant_id=run.tenant_id, run_id=run.id).model_dump() == {
        "tenant_id": "t",
        "run_id": "run-1",
        "generation": 1,
        "history_events": 0,
        "history_budget": 20_000,
    }


def test_a_direct_start_needs_the_plan_function_and_a_lambda_client(aws_env: None) -> None:
    """`invoke` without `CHORUS_PLAN_FUNCTION` refuses to start the API, rather than every run."""
    machine = "arn:aws:states:us-east-1:123456789012:stateMachine:chorus-run"
    base = Settings(executor="stepfunctions", state_machine_arn=machine, workflow_start="invoke")
    with pytest.raises(ValueError, match="CHORUS_PLAN_FUNCTION"):
        remote_executor(base, mock.Mock())
    direct = remote_executor(base.model_copy(update={"plan_function": "chorus-plan:live"}), mock.Mock())
    assert direct is not None and direct.lambda_client is not None
    by_execution = remote_executor(base.model_copy(update={"workflow_start": "execution"}), mock.Mock())
    assert by_execution is not None and by_execution.lambda_client is None
