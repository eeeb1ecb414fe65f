"""Memory blocks through the API: the blocks resource, agents' core memory, and agents editing it in runs."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.engine.memory import APPEND, REPLACE
from support import Recorder, create_agent, create_group, payloads, stream

MISSING_BLOCK = "block-123e4567-e89b-42d3-8456-426614174000"


async def make_block(client: httpx.AsyncClient, label: str, value: str = "", **extra: Any) -> dict[str, Any]:
    response = await client.post("/v1/blocks", json={"label": label, "value": value, **extra})
    assert response.status_code == 200, response.text
    block: dict[str, Any] = response.json()
    return block


async def test_blocks_crud_and_errors(client: httpx.AsyncClient) -> None:
    block = await make_block(client, "human", "Name: Ada", limit=100, description="the user")
    assert block["id"].startswith("block-") and block["limit"] == 100 and block["read_only"] is False
    assert (await client.get(f"/v1/blocks/{block['id']}")).json() == block
    await make_block(client, "persona", "helpful")
    listed = (await client.get("/v1/blocks/", params={"label": "human"})).json()
    assert [b["id"] for b in listed] == [block["id"]]
    patched = await client.patch(f"/v1/blocks/{block['id']}", json={"value": "Name: Ada Lovelace"})
    assert patched.status_code == 200 and patched.json()["value"] == "Name: Ada Lovelace"
    too_long = await client.patch(f"/v1/blocks/{block['id']}", json={"value": "x" * 101})
    assert too_long.status_code == 400 and "limit of 100" in too_long.json()["detail"]
    born_too_long = await client.post("/v1/blocks", json={"label": "x", "value": "abc", "limit": 2})
    assert born_too_long.status_code == 400
    assert (await client.post("/v1/blocks", json={"label": "bad label!"})).status_code == 422
    assert (await client.get("/v1/blocks/block-1")).status_code == 422
    assert (await client.get(f"/v1/blocks/{MISSING_BLOCK}")).status_code == 404
    assert (await client.delete(f"/v1/blocks/{block['id']}")).status_code == 200
    assert (await client.get(f"/v1/blocks/{block['id']}")).status_code == 404


async def test_a_null_in_an_update_leaves_a_required_field_alone(client: httpx.AsyncClient) -> None:
    """Found by schemathesis: `{"value": null}` or `{"limit": null}` answered 500 (None stored, then compared)."""
    block = await make_block(client, "human", "Name: Ada", limit=100, description="the user")
    for body in ({"value": None}, {"limit": None, "label": None, "read_only": None}):
        patched = await client.patch(f"/v1/blocks/{block['id']}", json=body)
        assert patched.status_code == 200, patched.text
        assert patched.json() == block
    cleared = await client.patch(f"/v1/blocks/{block['id']}", json={"description": None, "metadata": None})
    assert cleared.status_code == 200 and cleared.json()["description"] is None
    agent = (await client.post("/v1/agents", json={"name": "Ada", "block_ids": [block["id"]]})).json()
    by_label = await client.patch(f"/v1/agents/{agent['id']}/core-memory/blocks/human", json={"value": None})
    assert by_label.status_code == 200 and by_label.json()["value"] == "Name: Ada"


@pytest.mark.both_stores
async def test_agent_core_memory_routes(client: httpx.AsyncClient) -> None:
    shared = await make_block(client, "project", "Launch on Friday")
    body = {
        "name": "Ada",
        "model": "scripted/default",
        "memory_blocks": [{"label": "human", "value": "Name: Bo"}, {"label": "persona", "value": "terse"}],
        "block_ids": [shared["id"]],
    }
    agent = (await client.post("/v1/agents", json=body)).json()
    assert [b["label"] for b in agent["blocks"]] == ["human", "persona", "project"]
    assert agent["memory"]["blocks"] == agent["blocks"]
    base = f"/v1/agents/{agent['id']}/core-memory/blocks"
    assert [b["label"] for b in (await client.get(base)).json()] == ["human", "persona", "project"]
    assert (await client.get(f"{base}/human")).json()["value"] == "Name: Bo"
    assert (await client.get(f"{base}/nope")).status_code == 404
    changed = await client.patch(f"{base}/human", json={"value": "Name: Bo Jones"})
    assert changed.status_code == 200 and changed.json()["value"] == "Name: Bo Jones"
    detached = await client.patch(f"{base}/detach/{shared['id']}")
    assert [b["label"] for b in detached.json()["blocks"]] == ["human", "persona"]
    assert (await client.patch(f"{base}/detach/{shared['id']}")).status_code == 404
    attached = await client.patch(f"{base}/attach/{shared['id']}")
    assert [b["label"] for b in attached.json()["blocks"]] == ["human", "persona", "project"]
    assert (await client.patch(f"{base}/attach/{MISSING_BLOCK}")).status_code == 404
    duplicate = {"name": "X", "memory_blocks": [{"label": "a", "value": ""}, {"label": "a", "value": ""}]}
    assert (await client.post("/v1/agents", json=duplicate)).status_code == 400
    assert (await client.post("/v1/agents", json={"name": "Y", "block_ids": [MISSING_BLOCK]})).status_code == 404


async def test_group_shared_blocks_must_exist(client: httpx.AsyncClient) -> None:
    agent = await create_agent(client, "A")
    response = await client.post("/v1/groups", json={"agent_ids": [agent["id"]], "shared_block_ids": [MISSING_BLOCK]})
    assert response.status_code == 404


async def test_an_agent_edits_its_memory_with_tools_and_reads_it_back(client: httpx.AsyncClient) -> None:
    calls = [
        {"name": APPEND, "arguments": {"label": "human", "content": "Likes tea."}},
        {"name": REPLACE, "arguments": {"label": "human", "old_content": "Bo", "new_content": "Bo Jones"}},
        {"name": REPLACE, "arguments": {"label": "human", "old_content": "absent", "new_content": "x"}},
    ]
    body = {
        "name": "Ada",
        "model": "scripted/default",
        "memory_blocks": [{"label": "human", "value": "Name: Bo"}],
        "metadata": {"scripted": {"calls": calls, "replies": ["Noted."]}},
    }
    agent = (await client.post("/v1/agents", json=body)).json()
    group = await create_group(client, [agent["id"]])
    events = payloads(await stream(client, group["id"], {"input": "I like tea."}))
    returns = [(e["status"], e["tool_return"]) for e in events if e["message_type"] == "tool_return_message"]
    assert [r[0] for r in returns] == ["success", "success", "error"]
    assert "not found" in returns[2][1]
    assert events[-2]["stop_reason"] == "end_turn" and events[-1]["step_count"] == 2
    block = (await client.get(f"/v1/agents/{agent['id']}/core-memory/blocks/human")).json()
    assert block["value"] == "Name: Bo Jones\nLikes tea."


@pytest.mark.both_stores
async def test_sleeptime_agents_update_the_groups_shared_memory(make_app: Callable[..., FastAPI]) -> None:
    recorder = Recorder()
    app = make_app(resolver=recorder)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            await _sleeptime_memory(client, recorder)


async def _sleeptime_memory(client: httpx.AsyncClient, recorder: Recorder) -> None:
    notes = await make_block(client, "notes", "")
    main = await create_agent(client, "Main", replies=["Sure."], use_tools=False)
    scribes = []
    for name in ("Scribe", "Clerk"):
        calls = [{"name": APPEND, "arguments": {"label": "notes", "content": f"{name}: user likes tea"}}]
        scribes.append(await create_agent(client, name, calls=calls, replies=["done"], delay_s=0.005))
    config = {"manager_type": "sleeptime", "manager_agent_id": main["id"]}
    response = await client.post(
        "/v1/groups",
        json={"agent_ids": [s["id"] for s in scribes], "manager_config": config, "shared_block_ids": [notes["id"]]},
    )
    group = response.json()
    events = payloads(await stream(client, group["id"], {"input": "I like tea."}))
    children = events[-1]["run_ids"][1:]
    assert len(children) == 2
    for _ in range(500):
        runs = [(await client.get(f"/v1/runs/{c}")).json() for c in children]
        if all(r["status"] == "completed" for r in runs):
            break
        await asyncio.sleep(0.01)
    # both background agents appended to the one shared block at the same time: neither edit is lost
    value = (await client.get(f"/v1/blocks/{notes['id']}")).json()["value"]
    assert sorted(value.split("\n")) == ["Clerk: user likes tea", "Scribe: user likes tea"]
    # and the foreground agent reads the shared memory in its next run's system prompt, with the tools to edit it
    second = payloads(await stream(client, group["id"], {"input": "What do I like?"}))
    assert second[-2]["stop_reason"] == "end_turn"
    first_prompt, second_prompt = (r.system for r in recorder.requests["Main"])
    assert "<notes>" in first_prompt and "Scribe: user likes tea" not in first_prompt
    assert "Scribe: user likes tea" in second_prompt and "Clerk: user likes tea" in second_prompt
    assert [t.name for t in recorder.requests["Main"][-1].tools] == [APPEND, REPLACE]
