"""Faults injected into the workflow's tasks: every run still ends once, its log and history exact."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any
from unittest import mock

import pytest

from chorus.store.dynamodb import DynamoDBStore
from chorus.workflow.handlers import ModelRetryable, TaskFailed
from chorus.workflow.tasks import finalize, task_error
from support import create_agent, create_group, replies
from support.workflow_harness import (
    Crash,
    Harness,
    background,
    check_exact,
    crash_mid_turn,
    history_of,
    is_direct,
    logged,
    talking,
)


async def test_a_step_failing_with_a_retryable_model_error_is_retried_and_the_run_completes(
    harness: Harness,
) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2)
    group = await create_group(h.client, [ada["id"]])

    def rate_limited(event: dict[str, Any]) -> None:
        raise ModelRetryable(task_error("llm_api_error", "llm_rate_limit", "slow down"))

    h.faults.rules[("step", 1)] = rate_limited
    h.faults.rules[("step", 2)] = rate_limited
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason", "usage_statistics"]
    assert h.faults.count("step") == 3 and h.faults.errors == [("step", "ModelRetryable")] * 2
    await h.settle()
    assert (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()["status"] == "completed"


async def test_retryable_model_errors_past_the_retries_fail_the_run_with_its_stop_reason(started: Harness) -> None:
    """Started directly, the Plan that met the error hands the run to an execution, for the Map's retries."""
    h = started
    ada = await create_agent(h.client, "Ada", error="rate_limit")
    group = await create_group(h.client, [ada["id"]])
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["stop_reason", "error_message"]
    assert events[0]["stop_reason"] == "llm_api_error"
    assert events[1]["error_type"] == "llm_rate_limit"
    assert h.faults.count("step") == 5  # the first attempt and the definition's 4 retries
    executions = await h.settle()
    assert [e["name"] for e in executions] == [events[1]["run_id"]]
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "llm_api_error"
    # the group is free again
    assert (await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "x"})).status_code == 200


async def test_a_permanent_model_failure_is_caught_into_finish(started: Harness) -> None:
    """Started directly, the Plan running the turn finishes the run itself, as Finish would."""
    h = started
    ada = await create_agent(h.client, "Ada", error="invalid_llm_response")
    group = await create_group(h.client, [ada["id"]])
    events = await background(h, group["id"])
    assert events[0] == {**events[0], "message_type": "stop_reason", "stop_reason": "invalid_llm_response"}
    assert events[1]["message_type"] == "error_message" and "model failed" in events[1]["message"]
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "invalid_llm_response"
    executions = await h.settle()
    if is_direct(h):
        assert executions == [] and h.faults.errors == [] and h.faults.count("plan") == 1
        return
    assert h.faults.count("step") == 1 and h.faults.errors == [("step", "ModelFailed")]
    assert executions[0]["status"] == "SUCCEEDED"  # the workflow itself ended properly, in Finish


async def test_a_plan_failing_for_good_ends_the_run_failed_with_an_error_event(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2)
    bob = await create_agent(h.client, "Bob", tokens=2)
    group = await create_group(h.client, [ada["id"], bob["id"]])

    def broken(event: dict[str, Any]) -> None:
        raise TaskFailed(task_error("error", "internal_error", "KeyError: 'plan'"))

    h.faults.rules[("plan", 2)] = broken
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason", "error_message"]
    assert events[1]["stop_reason"] == "error" and events[2]["error_type"] == "internal_error"
    await h.settle()
    run = (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "error"
    assert h.faults.count("plan") == 2 and h.faults.count("finish") == 1


async def test_a_live_step_crashing_mid_stream_is_retried_with_its_attempt_marked_abandoned(
    harness: Harness,
) -> None:
    """The Step streams tokens (flushed to the log), then its sandbox dies before the commit: the
    retry names the dead attempt's messages abandoned and writes the turn again under new ids."""
    h = harness
    group_id, events = await crash_mid_turn(h, "step")
    await h.settle()
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group_id))
    history = await history_of(h, group_id)
    assert [m.get("name") for m in history[1:]] == ["Ada", "Bob"]


async def test_staged_workers_crashing_mid_write_and_a_publisher_crashing_mid_copy_lose_and_repeat_nothing(
    harness: Harness,
) -> None:
    h = harness
    boss = await create_agent(h.client, "Boss", tokens=2)
    workers = [await create_agent(h.client, f"W{i}", tokens=4) for i in range(4)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    group = await create_group(h.client, [w["id"] for w in workers], config)
    append, commit = DynamoDBStore.append_events, DynamoDBStore.commit_step
    torn: list[str] = []
    copies: list[str] = []

    async def torn_stage(self: DynamoDBStore, tenant: str, log_id: str, first: int, rows: list[str]) -> None:
        if ".stage." in log_id and log_id.endswith(".2") and not torn:
            torn.append(log_id)
            await append(self, tenant, log_id, first, rows[: len(rows) // 2])  # half the stage, no end
            raise Crash("killed while writing its stage")
        await append(self, tenant, log_id, first, rows)

    async def dying_copy(self: DynamoDBStore, step: Any, records: Any) -> None:
        # the first commit of a staged call's step (a copy into the run) dies after its events were copied
        if step.calls > 1 and step.call == 3 and not copies:
            copies.append(step.step_key)
            raise Crash("killed while publishing")
        await commit(self, step, records)

    with (
        mock.patch.object(DynamoDBStore, "append_events", torn_stage),
        mock.patch.object(DynamoDBStore, "commit_step", dying_copy),
    ):
        events = await background(h, group["id"], "go")
    assert torn and copies
    await h.settle()
    log = await logged(h, events[0]["run_id"])
    history = await history_of(h, group["id"])
    check_exact(log, history)
    assert not [e for e in log if "abandoned" in e], "a copy repeated after a crash is recognised, not re-sent"
    speakers = [m["name"] for m in history if m["message_type"] == "assistant_message"]
    assert speakers == ["W0", "W1", "W2", "W3", "Boss"]
    entries = replies(next(m for m in history if m["message_type"] == "tool_return_message")["tool_return"])
    assert [e["name"] for e in entries] == ["W0", "W1", "W2", "W3"]
    run = (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    assert run["status"] == "completed"


async def test_cancel_stops_the_execution_and_ends_the_run_cancelled(harness: Harness) -> None:
    h = harness
    group_id, run_id = await talking(h)
    cancelled = await h.client.post(f"/v1/groups/{group_id}/messages/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    # moto's interpreter goes on after StopExecution (AWS runs no state of a stopped execution): the Step in
    # flight sees the cancel flag within its heartbeat and returns, and moto may run Plan and Finish, which find
    # the run ended and leave it so, and report the execution SUCCEEDED; or one of those Lambda calls trips over
    # moto's own state after the stop ("'dict' object has no attribute 'region'") and it reports FAILED. What
    # AWS guarantees is that the execution ended; what Chorus guarantees is below: the run is ended once
    executions = await h.settle()
    assert len(executions) == 1 and executions[0]["status"] in ("ABORTED", "SUCCEEDED", "FAILED")
    log = await logged(h, run_id)
    assert log[-1] == {**log[-1], "message_type": "stop_reason", "stop_reason": "cancelled"}
    await asyncio.sleep(0.3)  # the stopped Step, still running, sees the flag and stops; it wrote nothing after [DONE]
    rows = await h.store.read_events("default", run_id, 0, 100_000)
    assert rows[-1][1] == "[DONE]" and Counter(d for _, d in rows)["[DONE]"] == 1
    follow = await h.client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "again"})
    assert follow.status_code == 200, "the cancelled run released the group"


@pytest.mark.parametrize("budget", [100])
async def test_a_long_run_continues_in_new_executions_before_its_history_fills(
    harness: Harness, budget: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    h = harness
    executor = h.app.state.services.runs.remote
    monkeypatch.setattr(executor, "history_budget", budget)
    agents = [await create_agent(h.client, f"A{i}", tokens=1) for i in range(3)]
    group = await create_group(h.client, [a["id"] for a in agents], {"manager_type": "round_robin", "max_turns": 14})
    events = await background(h, group["id"])
    run_id = events[0]["run_id"]
    assert len([e for e in events if e["message_type"] == "assistant_message"]) == 14
    executions = await h.settle()
    names = sorted((e["name"] for e in executions), key=lambda name: (len(name), name))
    assert names == [run_id, f"{run_id}-2", f"{run_id}-3"]
    assert {e["status"] for e in executions} == {"SUCCEEDED"}
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))


async def test_the_live_worker_copies_the_stages_already_done_when_it_finishes(harness: Harness) -> None:
    """W0 streams slowly while W1..W3 finish and stage; W0's Step then copies their stages right
    after its own turn (not waiting for the next Plan), and nothing is taken for a dead attempt."""
    h = harness
    boss = await create_agent(h.client, "Boss", tokens=1)
    slow = await create_agent(h.client, "W0", tokens=30, delay_s=0.02)
    fast = [await create_agent(h.client, f"W{i}", tokens=2) for i in range(1, 4)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    group = await create_group(h.client, [slow["id"], *(w["id"] for w in fast)], config)
    copied_by: list[str] = []
    commit = DynamoDBStore.commit_step

    async def watched(self: DynamoDBStore, step: Any, records: Any) -> None:
        here = h.faults.here()
        if step.calls > 1 and step.call > 0 and here is not None:
            copied_by.append(here[0])
        await commit(self, step, records)

    with mock.patch.object(DynamoDBStore, "commit_step", watched):
        events = await background(h, group["id"], "go")
    await h.settle()
    assert copied_by == ["step", "step", "step"]
    log = await logged(h, events[0]["run_id"])
    assert not [e for e in log if "abandoned" in e]
    check_exact(log, await history_of(h, group["id"]))


async def test_a_plan_running_after_its_run_was_cancelled_and_ended_ends_quietly(harness: Harness) -> None:
    """The race of a cancel from the API (flag, StopExecution, the end written at once) with a Plan
    already started: the Plan finds a complete log and hands over to Finish, which leaves the run be."""
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2)
    bob = await create_agent(h.client, "Bob", tokens=2)
    group = await create_group(h.client, [ada["id"], bob["id"]])
    original = DynamoDBStore.last_seq
    raced: list[str] = []

    async def cancelled_meanwhile(self: DynamoDBStore, tenant: str, run_id: str) -> Any:
        here = h.faults.here()
        if here is not None and here[:2] == ("plan", 2) and not raced:
            raced.append(run_id)  # the Plan has read its run (not terminal) and is opening its log
            run = await self.get_run(tenant, run_id)
            await self.update_run(run.model_copy(update={"cancel_requested": True}), expect_version=run.version)
            await finalize(self, h.settings, run, "cancelled", None)
        return await original(self, tenant, run_id)

    with mock.patch.object(DynamoDBStore, "last_seq", cancelled_meanwhile):
        events = await background(h, group["id"])
    assert raced
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason"]
    assert events[-1]["stop_reason"] == "cancelled"
    await h.settle()
    assert h.faults.errors == [], "no task failed on the complete log"
    rows = await h.store.read_events("default", events[0]["run_id"], 0, 1000)
    assert [d for _, d in rows].count("[DONE]") == 1 and rows[-1][1] == "[DONE]"
    run = (await h.client.get(f"/v1/runs/{events[0]['run_id']}")).json()
    assert run["status"] == "cancelled"
