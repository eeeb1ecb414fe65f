"""Custom tools through the API: the tools resource, agents' tools, running them in the sandbox, approvals."""

from __future__ import annotations

import inspect
from textwrap import dedent
from typing import Any

import httpx
import pytest

from support import create_group, payloads, stream
from support.letta_tools import get_secret_code_tool, roll_dice_tool

MISSING_TOOL = "tool-123e4567-e89b-42d3-8456-426614174000"


def source(func: Any) -> str:
    return dedent(inspect.getsource(func))


async def upsert(client: httpx.AsyncClient, func: Any, **extra: Any) -> dict[str, Any]:
    response = await client.put("/v1/tools", json={"source_code": source(func), **extra})
    assert response.status_code == 200, response.text
    tool: dict[str, Any] = response.json()
    return tool


@pytest.mark.both_stores
async def test_tools_resource(client: httpx.AsyncClient) -> None:
    tool = await upsert(client, get_secret_code_tool, default_requires_approval=True)
    assert tool["name"] == "get_secret_code_tool" and tool["id"].startswith("tool-")
    assert tool["json_schema"]["parameters"]["properties"]["input_text"] == {
        "type": "string",
        "description": "The input text to process.",
    }
    assert tool["json_schema"]["parameters"]["required"] == ["input_text"]
    assert tool["description"].startswith("A tool that returns the secret code")
    assert tool["default_requires_approval"] is True
    again = await upsert(client, get_secret_code_tool)
    assert again["id"] == tool["id"] and again["default_requires_approval"] is False, "PUT replaces by name"
    duplicate = await client.post("/v1/tools", json={"source_code": source(get_secret_code_tool)})
    assert duplicate.status_code == 409
    assert [t["id"] for t in (await client.get("/v1/tools", params={"name": "get_secret_code_tool"})).json()] == [
        tool["id"]
    ]
    patched = await client.patch(f"/v1/tools/{tool['id']}", json={"description": "codes", "return_char_limit": 10})
    assert patched.json()["description"] == "codes" and patched.json()["return_char_limit"] == 10
    broken = await client.post("/v1/tools", json={"source_code": "def oops(:\n    pass"})
    assert broken.status_code == 400 and "schema" in broken.json()["detail"]
    pip = {"source_code": source(roll_dice_tool), "pip_requirements": [{"name": "numpy"}]}
    assert (await client.post("/v1/tools", json=pip)).status_code == 400
    assert (await client.get("/v1/tools/tool-1")).status_code == 422
    assert (await client.get(f"/v1/tools/{MISSING_TOOL}")).status_code == 404
    assert (await client.delete(f"/v1/tools/{tool['id']}")).status_code == 200
    assert (await client.get(f"/v1/tools/{tool['id']}")).status_code == 404


async def test_agent_tools_routes(client: httpx.AsyncClient) -> None:
    dice = await upsert(client, roll_dice_tool)
    code = await upsert(client, get_secret_code_tool)
    agent = (await client.post("/v1/agents", json={"name": "Ada", "tool_ids": [dice["id"]]})).json()
    assert [t["name"] for t in agent["tools"]] == ["roll_dice_tool"]
    base = f"/v1/agents/{agent['id']}/tools"
    attached = (await client.patch(f"{base}/attach/{code['id']}")).json()
    assert [t["name"] for t in attached["tools"]] == ["roll_dice_tool", "get_secret_code_tool"]
    assert [t["id"] for t in (await client.get(base)).json()] == [dice["id"], code["id"]]
    detached = (await client.patch(f"{base}/detach/{dice['id']}")).json()
    assert [t["name"] for t in detached["tools"]] == ["get_secret_code_tool"]
    assert (await client.patch(f"{base}/detach/{dice['id']}")).status_code == 404
    assert (await client.patch(f"{base}/attach/{MISSING_TOOL}")).status_code == 404
    approval = await client.patch(f"{base}/approval/get_secret_code_tool", json={"requires_approval": True})
    assert approval.status_code == 200
    assert (await client.patch(f"{base}/approval/nope", json={"requires_approval": True})).status_code == 404
    assert (await client.post("/v1/agents", json={"name": "B", "tool_ids": [MISSING_TOOL]})).status_code == 404


async def test_an_agent_runs_its_custom_tools_in_the_sandbox(client: httpx.AsyncClient) -> None:
    code = await upsert(client, get_secret_code_tool)
    calls = [{"name": "get_secret_code_tool", "arguments": {"input_text": "hello world"}}]
    body = {"name": "Ada", "tool_ids": [code["id"]], "metadata": {"scripted": {"steps": [calls], "replies": ["ok"]}}}
    agent = (await client.post("/v1/agents", json=body)).json()
    group = await create_group(client, [agent["id"]])
    events = payloads(await stream(client, group["id"], {"input": "What is the code?"}))
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    assert ret["status"] == "success" and ret["tool_return"].isdigit()
    assert ret["stdout"] == ["computing the code of hello world"]
    assert events[-2]["stop_reason"] == "end_turn" and events[-1]["step_count"] == 2


async def test_a_failing_tool_is_an_error_the_model_reads(client: httpx.AsyncClient) -> None:
    code = await upsert(client, get_secret_code_tool)
    calls = [{"name": "get_secret_code_tool", "arguments": {"wrong": 1}}]
    body = {"name": "Ada", "tool_ids": [code["id"]], "metadata": {"scripted": {"steps": [calls], "replies": ["ok"]}}}
    agent = (await client.post("/v1/agents", json=body)).json()
    group = await create_group(client, [agent["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    assert ret["status"] == "error" and "TypeError" in ret["tool_return"]
    assert events[-2]["stop_reason"] == "end_turn"


@pytest.mark.both_stores
async def test_a_tool_requiring_approval_runs_once_approved(client: httpx.AsyncClient) -> None:
    code = await upsert(client, get_secret_code_tool, default_requires_approval=True)
    calls = [{"name": "get_secret_code_tool", "arguments": {"input_text": "hello world"}}]
    script = {"steps": [calls], "replies": ["Here it is."]}
    agent = (
        await client.post(
            "/v1/agents", json={"name": "Ada", "tool_ids": [code["id"]], "metadata": {"scripted": script}}
        )
    ).json()
    group = await create_group(client, [agent["id"]])
    first = payloads(await stream(client, group["id"], {"input": "Code please."}))
    assert first[0]["message_type"] == "approval_request_message" and first[-2]["stop_reason"] == "requires_approval"
    call_id = first[0]["tool_call"]["tool_call_id"]
    answer = {
        "messages": [
            {"type": "approval", "approvals": [{"type": "approval", "tool_call_id": call_id, "approve": True}]}
        ]
    }
    second = payloads(await stream(client, group["id"], answer))
    ret = next(e for e in second if e["message_type"] == "tool_return_message")
    assert ret["status"] == "success" and ret["tool_return"].isdigit() and ret["tool_call_id"] == call_id
    # turning approval off for this agent lets the next call run at once
    await client.patch(
        f"/v1/agents/{agent['id']}/tools/approval/get_secret_code_tool", json={"requires_approval": False}
    )
    third = payloads(await stream(client, group["id"], {"input": "Again."}))
    assert [e["message_type"] for e in third][:2] == ["tool_call_message", "tool_return_message"]


async def test_legacy_agents_speak_through_send_message(client: httpx.AsyncClient) -> None:
    ada = (await client.post("/v1/agents", json={"name": "Ada", "agent_type": "memgpt_v2_agent"})).json()
    assert ada["agent_type"] == "memgpt_v2_agent"
    bo = (await client.post("/v1/agents", json={"name": "Bo"})).json()
    group = await create_group(client, [ada["id"], bo["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Hi."}))
    spoken = [(e["message_type"], e.get("name")) for e in events if e["message_type"] != "usage_statistics"]
    assert spoken == [("assistant_message", "Ada"), ("assistant_message", "Bo"), ("stop_reason", None)]
    assert events[0]["content"].startswith("Ada (turn 1):")
    # without use_assistant_message the same speech is the tool call it is, answered by its return
    raw = payloads(await stream(client, group["id"], {"input": "Again.", "use_assistant_message": False}))
    assert [(e["message_type"], e.get("name")) for e in raw][:3] == [
        ("tool_call_message", "Ada"),
        ("tool_return_message", "Ada"),
        ("assistant_message", "Bo"),
    ]
    assert raw[0]["tool_call"]["name"] == "send_message" and raw[1]["status"] == "success"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["message_type"] for m in history if m.get("name") == "Ada"] == [
        "assistant_message",
        "tool_call_message",
        "tool_return_message",
    ]


def non_utf8_name() -> str:
    """A file name that is not UTF-8, as `os.listdir` returns it: with a lone surrogate.

    Returns:
        The name.
    """
    import os

    name = os.fsdecode(b"caf\xe9")
    print(name)
    return name


async def test_a_tool_returning_invalid_unicode_is_stored_with_replacement_characters(
    client: httpx.AsyncClient,
) -> None:
    tool = await upsert(client, non_utf8_name)
    calls = [{"name": "non_utf8_name", "arguments": {}}]
    body = {"name": "Ada", "tool_ids": [tool["id"]], "metadata": {"scripted": {"steps": [calls], "replies": ["ok"]}}}
    agent = (await client.post("/v1/agents", json=body)).json()
    group = await create_group(client, [agent["id"]])
    events = payloads(await stream(client, group["id"], {"input": "List it."}))
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    assert (ret["status"], ret["tool_return"], ret["stdout"]) == ("success", "caf\ufffd", ["caf\ufffd"])
    assert events[-2]["stop_reason"] == "end_turn"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["tool_return"] for m in history if m["message_type"] == "tool_return_message"] == ["caf\ufffd"]
