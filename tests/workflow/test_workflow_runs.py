"""Background runs executed by the run state machine: the same stream, history and end as in process."""

from __future__ import annotations

from support import create_agent, create_group, parse_sse, payloads, replies
from support.workflow_harness import Harness, background, is_direct


async def test_a_round_robin_run_executes_on_step_functions(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=3)
    bob = await create_agent(h.client, "Bob", tokens=3)
    group = await create_group(h.client, [ada["id"], bob["id"]])
    events = await background(h, group["id"])
    run_id = events[0]["run_id"]
    kinds = [e["message_type"] for e in events]
    assert kinds == ["assistant_message", "assistant_message", "stop_reason", "usage_statistics"]
    assert [e["name"] for e in events[:2]] == ["Ada", "Bob"]
    assert [e["seq_id"] for e in events] == list(range(1, len(events) + 1))
    executions = await h.settle()
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "completed" and run["stop_reason"] == "end_turn"
    resumed = payloads(parse_sse((await h.client.post(f"/v1/runs/{run_id}/stream", json={})).text))
    assert resumed == events
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["message_type"] for m in history] == ["user_message", "assistant_message", "assistant_message"]
    assert h.faults.count("plan") == 3 and h.faults.count("step") == 2 and h.faults.count("finish") == 1
    # only the Step function runs tools: Plan and Finish never choose a tool executor at all
    chosen = {task: handler.environment.workflow.tool_executor for task, handler in h.handlers.items()}
    assert chosen["step"] is not None and chosen["plan"] is None and chosen["finish"] is None


async def test_a_supervisor_fan_out_runs_its_workers_as_a_map_and_reads_in_plan_order(harness: Harness) -> None:
    h = harness
    boss = await create_agent(h.client, "Boss", tokens=2)
    workers = [await create_agent(h.client, f"W{i}", tokens=2 + i, delay_s=0.02 * (5 - i)) for i in range(5)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    group = await create_group(h.client, [w["id"] for w in workers], config)
    events = await background(h, group["id"], "split this")
    run_id = events[0]["run_id"]
    speakers = [e["name"] for e in events if e["message_type"] == "assistant_message"]
    # later workers finish first (shorter delays), yet the log reads in agent order
    assert speakers == ["W0", "W1", "W2", "W3", "W4", "Boss"]
    returns = [e for e in events if e["message_type"] == "tool_return_message"]
    assert len(returns) == 1
    entries = replies(returns[0]["tool_return"])
    assert [e["name"] for e in entries] == ["W0", "W1", "W2", "W3", "W4"]
    assert [e["seq_id"] for e in events] == list(range(1, len(events) + 1))
    steps = [event for task, event in h.faults.calls if task == "step"]
    fan_out = [s for s in steps if s["calls"] == 5]
    assert sorted(s["call"] for s in fan_out) == [0, 1, 2, 3, 4]
    assert [s["call"] for s in fan_out if s["live"]] == [0]
    await h.settle()
    resumed = payloads(parse_sse((await h.client.post(f"/v1/runs/{run_id}/stream", json={})).text))
    assert resumed == events
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    logged = [e["id"] for e in events if "id" in e]
    assert [m["id"] for m in history if m["message_type"] != "user_message"] == list(dict.fromkeys(logged))
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "completed"
    usage = events[-1]
    assert usage["message_type"] == "usage_statistics" and usage["step_count"] == 7


async def test_async_send_returns_at_once_and_the_workflow_finishes_the_run(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2, delay_s=0.01)
    group = await create_group(h.client, [ada["id"]])
    response = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
    assert response.status_code == 200, response.text
    run_id = response.json()["id"]
    await h.settle()
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "completed" and run["stop_reason"] == "end_turn"
    events = payloads(parse_sse((await h.client.post(f"/v1/runs/{run_id}/stream", json={})).text))
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason", "usage_statistics"]


async def test_a_foreground_run_still_runs_in_the_api_process(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2)
    group = await create_group(h.client, [ada["id"]])
    response = await h.client.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "hi"})
    assert response.status_code == 200
    assert payloads(parse_sse(response.text))[-1]["message_type"] == "usage_statistics"
    assert h.executions() == [] and h.faults.calls == []


async def test_sleeptime_children_start_as_their_parent_started(started: Harness) -> None:
    """Each child is a run of its own, started as the API starts one: an execution, or (started
    directly) an async invocation of the Plan function, with no execution at all."""
    h = started
    boss = await create_agent(h.client, "Boss", replies=["Noted."])
    mem = await create_agent(h.client, "Mem", tokens=2)
    config = {"manager_type": "sleeptime", "manager_agent_id": boss["id"], "sleeptime_agent_frequency": 1}
    group = await create_group(h.client, [mem["id"]], config)
    events = await background(h, group["id"], "I like tea.")
    run_id = events[0]["run_id"]
    run_ids = events[-1]["run_ids"]
    assert run_ids[0] == run_id and len(run_ids) == 2
    executions = await h.settle()
    if is_direct(h):
        assert executions == [] and h.async_invokes.delivered_runs() == run_ids
    else:
        assert sorted(e["name"] for e in executions) == sorted(run_ids)
        assert {e["status"] for e in executions} == {"SUCCEEDED"}
    child = (await h.client.get(f"/v1/runs/{run_ids[1]}")).json()
    assert child["status"] == "completed" and child["metadata"]["parent_run_id"] == run_id


async def test_a_human_approval_pauses_and_resumes_a_workflow_run(started: Harness) -> None:
    h = started
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
    assert [e["message_type"] for e in first] == ["approval_request_message", "stop_reason", "usage_statistics"]
    assert first[1]["stop_reason"] == "requires_approval"
    call_id = first[0]["tool_call"]["tool_call_id"]
    answer = {"type": "approval", "approvals": [{"tool_call_id": call_id, "approve": True}]}
    second = await background(h, group["id"], messages=[answer])
    names = [(e["message_type"], e.get("name")) for e in second if e["message_type"].endswith("_message")]
    assert names == [
        ("approval_response_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Ada"),
        ("assistant_message", "Bo"),
    ]
    block = (await h.client.get(f"/v1/agents/{ada.json()['id']}/core-memory/blocks/notes")).json()
    assert block["value"] == "likes tea"
    await h.settle()
    assert len(h.executions()) == (0 if is_direct(h) else 2), "started directly, each run ran without one"
