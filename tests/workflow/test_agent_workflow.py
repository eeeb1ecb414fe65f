"""An agent's background runs (`/v1/agents/{id}/messages…` with `background`, or `/async`) on the state machine.

The agent's direct conversation is a hidden group, so its background runs take the same
workflow as a group's: these tests check they do, with the agent's own history as context.
"""

from __future__ import annotations

from typing import Any

from chorus.engine.memory import APPEND
from support import create_agent, parse_sse, payloads
from support.workflow_harness import Harness


async def agent_background(h: Harness, agent_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await h.client.post(f"/v1/agents/{agent_id}/messages/stream", json={**body, "background": True})
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    assert frames[-1].data == "[DONE]"
    return payloads(frames)


async def test_an_agents_background_runs_execute_on_step_functions(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=3)
    first = await agent_background(h, ada["id"], {"input": "hello"})
    second = await agent_background(h, ada["id"], {"input": "again", "stream_tokens": True})
    assert [e["message_type"] for e in first] == ["assistant_message", "stop_reason", "usage_statistics"]
    text = "".join(e["content"] for e in second if e["message_type"] == "assistant_message")
    assert text.startswith("Ada (turn 2):"), "the workflow gives the agent its own history"
    executions = await h.settle()
    run_ids = [first[0]["run_id"], second[0]["run_id"]]
    assert sorted((e["name"], e["status"]) for e in executions) == sorted((r, "SUCCEEDED") for r in run_ids)
    for run_id, events in zip(run_ids, (first, second), strict=True):
        run = (await h.client.get(f"/v1/runs/{run_id}")).json()
        assert run["status"] == "completed" and run["agent_id"] == ada["id"] and run["group_id"] is None
        resumed = payloads(parse_sse((await h.client.post(f"/v1/runs/{run_id}/stream", json={})).text))
        assert resumed == events
    history = (await h.client.get(f"/v1/agents/{ada['id']}/messages", params={"order": "asc"})).json()
    assert [m["message_type"] for m in history] == ["user_message", "assistant_message"] * 2
    assert history[3]["content"] == text


async def test_an_agents_async_run_pauses_for_approval_and_resumes_on_step_functions(harness: Harness) -> None:
    h = harness
    body = {
        "name": "Ada",
        "model": "scripted/default",
        "metadata": {"scripted": {"steps": [[{"name": APPEND, "arguments": {"label": "notes", "content": "tea"}}]]}},
        "memory_blocks": [{"label": "notes", "value": ""}],
        "tool_rules": [{"type": "requires_approval", "tool_name": APPEND}],
    }
    ada = (await h.client.post("/v1/agents", json=body)).json()
    started = await h.client.post(f"/v1/agents/{ada['id']}/messages/async", json={"input": "remember tea"})
    assert started.status_code == 200, started.text
    await h.settle()
    paused = (await h.client.get(f"/v1/runs/{started.json()['id']}")).json()
    assert paused["status"] == "completed" and paused["stop_reason"] == "requires_approval"
    request = (await h.client.get(f"/v1/agents/{ada['id']}/messages")).json()[0]
    assert request["message_type"] == "approval_request_message"
    answer = [
        {"type": "approval", "approvals": [{"tool_call_id": request["tool_call"]["tool_call_id"], "approve": True}]}
    ]
    resumed = await agent_background(h, ada["id"], {"messages": answer})
    assert resumed[0]["message_type"] == "approval_response_message" and resumed[-2]["stop_reason"] == "end_turn"
    await h.settle()
    block = (await h.client.get(f"/v1/agents/{ada['id']}/core-memory/blocks/notes")).json()
    assert block["value"] == "tea"
