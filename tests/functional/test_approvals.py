"""Human in the loop and tool rules in group runs, modelled on Letta's human-in-the-loop tests.

An agent whose tool needs approval stops with `approval_request_message`
and `requires_approval`; the group's run pauses at that agent. The next
request carries the answers (approve, deny with a reason, or a client-side
tool return), resumes that agent's turn and the group's plan. Memory tools
stand in for custom tools here (a `requires_approval` tool rule on
`core_memory_append`), so the flow is tested without the sandbox.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chorus.engine.memory import APPEND, REPLACE
from support import create_group, parse_sse, payloads, stream

APPEND_TEA = {"name": APPEND, "arguments": {"label": "notes", "content": "likes tea"}}


async def agent(client: httpx.AsyncClient, name: str, script: dict[str, Any], **body: Any) -> dict[str, Any]:
    payload = {"name": name, "model": "scripted/default", "metadata": {"scripted": script}, **body}
    response = await client.post("/v1/agents", json=payload)
    assert response.status_code == 200, response.text
    created: dict[str, Any] = response.json()
    return created


async def paused_group(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    ada = await agent(
        client,
        "Ada",
        {"steps": [[APPEND_TEA]], "replies": ["Saved."]},
        memory_blocks=[{"label": "notes", "value": ""}],
        tool_rules=[{"type": "requires_approval", "tool_name": APPEND}],
    )
    bo = await agent(client, "Bo", {"replies": ["Bo here."], "use_tools": False})
    group = await create_group(client, [ada["id"], bo["id"]])
    return ada, bo, group


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str | None]]:
    return [(e["message_type"], e.get("name")) for e in events if e["message_type"] not in ("usage_statistics",)]


async def notes(client: httpx.AsyncClient, agent_id: str) -> str:
    block = (await client.get(f"/v1/agents/{agent_id}/core-memory/blocks/notes")).json()
    return str(block["value"])


def approval(tool_call_id: str, **answer: Any) -> dict[str, Any]:
    return {"messages": [{"type": "approval", "approvals": [{"tool_call_id": tool_call_id, **answer}]}]}


@pytest.mark.both_stores
async def test_approve_resumes_the_agent_and_the_group(client: httpx.AsyncClient) -> None:
    ada, _, group = await paused_group(client)
    first = payloads(await stream(client, group["id"], {"input": "Remember that I like tea."}))
    assert kinds(first) == [("approval_request_message", "Ada"), ("stop_reason", None)]
    request = first[0]
    assert request["tool_call"]["name"] == APPEND and request["tool_calls"] == [request["tool_call"]]
    assert first[-2]["stop_reason"] == "requires_approval"
    run = (await client.get(f"/v1/runs/{first[0]['run_id']}")).json()
    assert run["status"] == "completed" and run["stop_reason"] == "requires_approval"
    assert await notes(client, ada["id"]) == "", "nothing runs before a human says so"

    busy = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "hello?"})
    assert busy.status_code == 409 and "approve or deny the pending request" in busy.json()["detail"]
    wrong = await client.post(f"/v1/groups/{group['id']}/messages", json=approval("call_nope", approve=True))
    assert wrong.status_code == 400 and "Invalid tool call IDs" in wrong.json()["detail"]

    call_id = request["tool_call"]["tool_call_id"]
    second = payloads(await stream(client, group["id"], {**approval(call_id, approve=True), "stream_tokens": True}))
    assert kinds(second)[:2] == [("approval_response_message", "Ada"), ("tool_return_message", "Ada")]
    response, ret = second[0], second[1]
    assert response["approval_request_id"] == call_id and response["approve"] is True
    assert response["approvals"][0]["tool_call_id"] == call_id
    assert ret["tool_call_id"] == call_id and ret["status"] == "success"
    spoken = [(e["name"], e["content"]) for e in second if e["message_type"] == "assistant_message"]
    assert spoken == [("Ada", "Saved."), ("Bo", "Bo"), ("Bo", " here.")]
    assert second[-2]["stop_reason"] == "end_turn" and second[-1]["step_count"] == 2
    assert await notes(client, ada["id"]) == "likes tea"

    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [(m["message_type"], m["name"]) for m in history] == [
        ("user_message", None),
        ("approval_request_message", "Ada"),
        ("approval_response_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Ada"),
        ("assistant_message", "Bo"),
    ]
    after = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "And cake."})
    assert after.status_code == 200, "the pause is over"
    assert after.json()["stop_reason"]["stop_reason"] == "requires_approval", "Ada asks again, for the new call"
    again = await client.post(f"/v1/groups/{group['id']}/messages", json=approval(call_id, approve=True))
    assert again.status_code == 400 and "Invalid tool call IDs" in again.json()["detail"], "an answered call is gone"


@pytest.mark.both_stores
async def test_deny_with_a_reason_tells_the_model(client: httpx.AsyncClient) -> None:
    ada, _, group = await paused_group(client)
    first = payloads(await stream(client, group["id"], {"input": "Remember tea."}))
    call_id = first[0]["tool_call"]["tool_call_id"]
    body = approval(call_id, approve=False, reason="not today")
    response = await client.post(f"/v1/groups/{group['id']}/messages", json=body)
    assert response.status_code == 200, response.text
    messages = response.json()["messages"]
    ret = next(m for m in messages if m["message_type"] == "tool_return_message")
    assert ret["status"] == "error" and ret["tool_return"].endswith("User reason: not today")
    assert [m["name"] for m in messages if m["message_type"] == "assistant_message"] == ["Ada", "Bo"]
    assert await notes(client, ada["id"]) == ""


async def test_client_side_tool_return_is_used_as_the_result(client: httpx.AsyncClient) -> None:
    ada, _, group = await paused_group(client)
    first = payloads(await stream(client, group["id"], {"input": "Remember tea."}))
    call_id = first[0]["tool_call"]["tool_call_id"]
    answer = {"type": "tool", "tool_call_id": call_id, "tool_return": "done by the client", "status": "success"}
    events = payloads(await stream(client, group["id"], {"messages": [{"type": "approval", "approvals": [answer]}]}))
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    assert ret["tool_return"] == "done by the client" and ret["status"] == "success"
    assert await notes(client, ada["id"]) == "", "the client ran it, not the server"


async def test_deprecated_single_approval_fields(client: httpx.AsyncClient) -> None:
    ada, _, group = await paused_group(client)
    first = payloads(await stream(client, group["id"], {"input": "Remember tea."}))
    call_id = first[0]["tool_call"]["tool_call_id"]
    body = {"messages": [{"type": "approval", "approve": True, "approval_request_id": call_id}]}
    events = payloads(parse_sse((await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)).text))
    assert next(e for e in events if e["message_type"] == "tool_return_message")["status"] == "success"
    assert await notes(client, ada["id"]) == "likes tea"


async def test_a_broadcast_reply_cannot_wait_for_approval(client: httpx.AsyncClient) -> None:
    boss = await agent(client, "Boss", {"replies": ["ok"]})
    worker = await agent(
        client,
        "Ada",
        {"steps": [[APPEND_TEA]], "replies": ["Could not save."]},
        memory_blocks=[{"label": "notes", "value": ""}],
        tool_rules=[{"type": "requires_approval", "tool_name": APPEND}],
    )
    group = await create_group(client, [worker["id"]], {"manager_type": "supervisor", "manager_agent_id": boss["id"]})
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    refused = next(e for e in events if e["message_type"] == "tool_return_message" and e["name"] == "Ada")
    assert refused["status"] == "error" and "approval" in refused["tool_return"]
    assert events[-2]["stop_reason"] == "end_turn"
    assert await notes(client, worker["id"]) == ""


# tool rules in runs


async def rules_agent(client: httpx.AsyncClient, steps: list[list[dict[str, Any]]], rules: list[Any]) -> dict[str, Any]:
    return await agent(
        client,
        "Ada",
        {"steps": steps, "replies": ["Done."]},
        memory_blocks=[{"label": "notes", "value": "tea"}],
        tool_rules=rules,
    )


async def test_terminal_tool_ends_the_turn_and_the_group_goes_on(client: httpx.AsyncClient) -> None:
    ada = await rules_agent(client, [[APPEND_TEA], [APPEND_TEA]], [{"type": "exit_loop", "tool_name": APPEND}])
    bo = await agent(client, "Bo", {"replies": ["Bo here."], "use_tools": False})
    group = await create_group(client, [ada["id"], bo["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    assert kinds(events) == [
        ("tool_call_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Bo"),
        ("stop_reason", None),
    ]
    assert events[-2]["stop_reason"] == "end_turn" and await notes(client, ada["id"]) == "tea\nlikes tea"


async def test_run_first_refuses_any_other_first_call(client: httpx.AsyncClient) -> None:
    replace = {"name": REPLACE, "arguments": {"label": "notes", "old_content": "tea", "new_content": "coffee"}}
    ada = await rules_agent(client, [[APPEND_TEA], [replace]], [{"type": "run_first", "tool_name": REPLACE}])
    group = await create_group(client, [ada["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    returns = [(e["status"], e["tool_return"]) for e in events if e["message_type"] == "tool_return_message"]
    assert returns[0][0] == "error" and "not available to this agent now" in returns[0][1]
    assert returns[1][0] == "success" and await notes(client, ada["id"]) == "coffee"


async def test_required_before_exit_keeps_the_turn_going(client: httpx.AsyncClient) -> None:
    ada = await rules_agent(client, [[], [APPEND_TEA]], [{"type": "required_before_exit", "tool_name": APPEND}])
    group = await create_group(client, [ada["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    assert kinds(events) == [
        ("assistant_message", "Ada"),
        ("tool_call_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Ada"),
        ("stop_reason", None),
    ]
    assert events[-1]["step_count"] == 3 and await notes(client, ada["id"]) == "tea\nlikes tea"


async def test_max_count_per_step(client: httpx.AsyncClient) -> None:
    rule = {"type": "max_count_per_step", "tool_name": APPEND, "max_count_limit": 1}
    ada = await rules_agent(client, [[APPEND_TEA], [APPEND_TEA]], [rule])
    group = await create_group(client, [ada["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    statuses = [e["status"] for e in events if e["message_type"] == "tool_return_message"]
    assert statuses == ["success", "error"] and await notes(client, ada["id"]) == "tea\nlikes tea"


async def test_bad_tool_rules_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/agents", json={"name": "X", "tool_rules": [{"type": "nonsense", "tool_name": "a"}]}
    )
    assert response.status_code == 422
