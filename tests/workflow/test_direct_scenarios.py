"""Directly started runs in the scenarios the execution path is tested in: failures the definition
would catch or retry, sleeptime children, approvals, double-texting. Each ends as it does in an
execution; what differs is only where it ran (`test_direct_start` has the lease and its faults)."""

from __future__ import annotations

from typing import Any

from chorus.errors import StorageUnavailable
from support import create_agent, create_group
from support.workflow_harness import Harness, background, check_exact, ended, history_of, logged, send


async def test_a_permanent_model_failure_is_finished_by_the_direct_plan(direct: Harness) -> None:
    """What the definition's Catch would hand Finish, the direct Plan finishes itself, with the same code."""
    h = direct
    ada = await create_agent(h.client, "Ada", error="invalid_llm_response")
    group = await create_group(h.client, [ada["id"]])
    events = await background(h, group["id"])
    assert events[0] == {**events[0], "message_type": "stop_reason", "stop_reason": "invalid_llm_response"}
    assert events[1]["message_type"] == "error_message" and "model failed" in events[1]["message"]
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "invalid_llm_response"
    await h.settle()
    assert h.executions() == [] and h.faults.errors == [] and h.faults.count("plan") == 1


async def test_a_retryable_model_error_is_handed_over_to_the_maps_retries(direct: Harness) -> None:
    h = direct
    ada = await create_agent(h.client, "Ada", error="rate_limit")
    group = await create_group(h.client, [ada["id"]])
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["stop_reason", "error_message"]
    assert events[0]["stop_reason"] == "llm_api_error"
    executions = await h.settle()
    assert [e["name"] for e in executions] == [events[1]["run_id"]]
    assert h.faults.count("step") == 5, "the Map's Step: the first attempt and the definition's 4 retries"
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "llm_api_error"


async def test_an_unavailable_store_fails_the_attempt_and_lambda_retries_it(direct: Harness) -> None:
    h = direct
    agents = [await create_agent(h.client, name, tokens=2) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])

    def unavailable(event: dict[str, Any]) -> None:
        raise StorageUnavailable("DynamoDB is throttling")

    h.faults.rules[("plan", 1)] = unavailable
    events = await background(h, group["id"])
    await h.settle()
    assert h.faults.errors == [("plan", "StorageUnavailable")] and h.faults.count("plan") == 2
    assert h.executions() == []
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group["id"]))


async def test_a_direct_runs_sleeptime_child_runs_as_an_execution(direct: Harness) -> None:
    h = direct
    boss = await create_agent(h.client, "Boss", replies=["Noted."])
    mem = await create_agent(h.client, "Mem", tokens=2)
    config = {"manager_type": "sleeptime", "manager_agent_id": boss["id"], "sleeptime_agent_frequency": 1}
    group = await create_group(h.client, [mem["id"]], config)
    events = await background(h, group["id"], "I like tea.")
    run_ids = events[-1]["run_ids"]
    assert run_ids[0] == events[0]["run_id"] and len(run_ids) == 2
    executions = await h.settle()
    assert [(e["name"], e["status"]) for e in executions] == [(run_ids[1], "SUCCEEDED")]
    child = (await h.client.get(f"/v1/runs/{run_ids[1]}")).json()
    assert child["status"] == "completed" and child["metadata"]["parent_run_id"] == run_ids[0]


async def test_an_approval_pauses_a_direct_run_and_the_answer_resumes_it_directly(direct: Harness) -> None:
    h = direct
    call = {"name": "core_memory_append", "arguments": {"label": "notes", "content": "likes tea"}}
    ada = await h.client.post(
        "/v1/agents",
        json={
            "name": "Ada",
            "model": "scripted/default",
            "metadata": {"scripted": {"steps": [[call]], "replies": ["Saved."]}},
            "memory_blocks": [{"label": "notes", "value": ""}],
            "tool_rules": [{"type": "requires_approval", "tool_name": "core_memory_append"}],
        },
    )
    bo = await create_agent(h.client, "Bo", replies=["Bo here."], use_tools=False)
    group = await create_group(h.client, [ada.json()["id"], bo["id"]])
    first = await background(h, group["id"], "Remember that I like tea.")
    assert first[1]["stop_reason"] == "requires_approval"
    answer = {
        "type": "approval",
        "approvals": [{"tool_call_id": first[0]["tool_call"]["tool_call_id"], "approve": True}],
    }
    second = await background(h, group["id"], messages=[answer])
    names = [(e["message_type"], e.get("name")) for e in second if e["message_type"].endswith("_message")]
    assert names[-2:] == [("assistant_message", "Ada"), ("assistant_message", "Bo")]
    block = (await h.client.get(f"/v1/agents/{ada.json()['id']}/core-memory/blocks/notes")).json()
    assert block["value"] == "likes tea"
    await h.settle()
    assert h.executions() == [] and h.faults.count("plan") == 2


async def test_enqueued_runs_follow_a_direct_run_in_order(direct: Harness) -> None:
    h = direct
    ada = await create_agent(h.client, "Ada", tokens=20, delay_s=0.02)
    group = await create_group(h.client, [ada["id"]])
    first = await send(h, group["id"], "one")
    queued = [await send(h, group["id"], text, "enqueue") for text in ("two", "three")]
    assert [r["status"] for r in await ended(h, [first, *queued])] == ["completed"] * 3
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["content"] for m in history if m["message_type"] == "user_message"] == ["one", "two", "three"]


async def test_a_rollback_stops_a_running_direct_run_and_undoes_its_messages(direct: Harness) -> None:
    h = direct
    ada = await create_agent(h.client, "Ada", tokens=50, delay_s=0.2)
    group = await create_group(h.client, [ada["id"]])
    first = await send(h, group["id"], "one")
    second = await send(h, group["id"], "instead", "rollback")
    undone, done = await ended(h, [first, second])
    assert done["status"] == "completed"
    assert undone["status"] == "cancelled" and undone["metadata"]["rolled_back_by"] == second["id"]
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert {m["run_id"] for m in history} == {second["id"]}
