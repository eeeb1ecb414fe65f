"""Talking to one agent (`/v1/agents/{agent_id}/messages…`), through the ASGI app, on both stores.

An agent's direct conversation runs on the group machinery (a hidden one-member
group): these tests check that it speaks Letta's agent API and keeps every
guarantee of a group send, and that its hidden group shows nowhere.
"""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from chorus.clock import now_iso
from chorus.engine.memory import APPEND
from chorus.ids import new_id
from chorus.runs.solo import solo_group_id
from chorus.schemas.messages import LettaResponse
from chorus.store.base import Store
from chorus.store.records import RunRecord
from support import create_agent, create_group, parse_sse, payloads

MISSING_AGENT = "agent-00000000-0000-4000-8000-000000000000"
SLOW = {"tokens": 2, "delay_s": 60}
APPEND_TEA = {"name": APPEND, "arguments": {"label": "notes", "content": "likes tea"}}


async def agent_stream(client: httpx.AsyncClient, agent_id: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    response = await client.post(f"/v1/agents/{agent_id}/messages/stream", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return payloads(parse_sse(response.text))


async def history(client: httpx.AsyncClient, agent_id: str, **params: Any) -> list[dict[str, Any]]:
    response = await client.get(f"/v1/agents/{agent_id}/messages", params=params)
    assert response.status_code == 200, response.text
    messages: list[dict[str, Any]] = response.json()
    return messages


async def terminal_run(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    for _ in range(2000):
        run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
        if run["status"] not in ("created", "running"):
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never ended")


@pytest.mark.both_stores
async def test_stream_is_one_agent_turn_and_its_run_names_the_agent(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=4)
    events = await agent_stream(client, ada["id"], {"input": "hello"})
    assert [e["message_type"] for e in events] == ["assistant_message", "stop_reason", "usage_statistics"]
    reply = events[0]
    assert reply["sender_id"] == ada["id"] and reply["name"] == "Ada"
    assert reply["content"].startswith("Ada (turn 1):")
    assert [e["seq_id"] for e in events] == [1, 2, 3]
    assert events[1]["stop_reason"] == "end_turn" and events[2]["step_count"] == 1
    assert events[2]["run_ids"] == [reply["run_id"]]
    run = (await client.get(f"/v1/runs/{reply['run_id']}")).json()
    assert run["status"] == "completed" and run["agent_id"] == ada["id"]
    assert run["group_id"] is None and "group_id" not in run["metadata"], "the hidden group shows nowhere"
    assert run["metadata"]["run_type"] == "send_message_streaming"
    listed = (await client.get("/v1/runs", params={"agent_id": ada["id"]})).json()
    assert [r["id"] for r in listed] == [run["id"]] and listed[0]["group_id"] is None


@pytest.mark.both_stores
async def test_the_agents_own_history_is_its_context_and_lists_like_letta(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=2)
    for n, text in enumerate(["first", "second", "third"], start=1):
        events = await agent_stream(client, ada["id"], {"input": text})
        assert events[0]["content"].startswith(f"Ada (turn {n}):"), "turn N sees turns 1..N-1"
    newest_first = await history(client, ada["id"])
    assert [m["message_type"] for m in newest_first] == ["assistant_message", "user_message"] * 3
    assert newest_first[1]["content"] == "third"
    oldest_first = await history(client, ada["id"], order="asc")
    assert [m["id"] for m in oldest_first] == [m["id"] for m in reversed(newest_first)]
    page = await history(client, ada["id"], order="asc", after=oldest_first[1]["id"], limit=2)
    assert [m["id"] for m in page] == [m["id"] for m in oldest_first[2:4]]
    before = await history(client, ada["id"], before=oldest_first[2]["id"])
    assert [m["id"] for m in before] == [m["id"] for m in newest_first[:3]], "before it in newest-first order"
    assert (await client.get(f"/v1/agents/{ada['id']}/messages", params={"limit": 0})).status_code == 422
    too_many = await client.get(f"/v1/agents/{ada['id']}/messages", params={"limit": 10**6})
    assert too_many.status_code == 422


@pytest.mark.both_stores
async def test_create_answers_a_letta_response_or_streams_when_asked(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=3)
    whole = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hi"})
    assert whole.status_code == 200, whole.text
    response = LettaResponse.model_validate(whole.json())
    assert [m.message_type for m in response.messages] == ["assistant_message"]
    assert response.stop_reason.stop_reason == "end_turn" and response.usage.step_count == 1
    streamed = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hi", "streaming": True})
    assert streamed.headers["content-type"].startswith("text/event-stream")
    assert [e["message_type"] for e in payloads(parse_sse(streamed.text))][-2:] == ["stop_reason", "usage_statistics"]
    refused = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hi", "stream_tokens": True})
    assert refused.status_code == 422 and "stream_tokens" in refused.json()["detail"]


@pytest.mark.both_stores
async def test_token_chunks_reassemble_to_history(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=6)
    events = await agent_stream(client, ada["id"], {"input": "hi", "stream_tokens": True})
    chunks = [e for e in events if e["message_type"] == "assistant_message"]
    assert len(chunks) == 6 and len({c["id"] for c in chunks}) == 1
    stored = (await history(client, ada["id"]))[0]
    assert stored["id"] == chunks[0]["id"] and stored["content"] == "".join(c["content"] for c in chunks)


async def test_body_fields_are_honoured(client: httpx.AsyncClient) -> None:
    body = {"name": "Ada", "model": "scripted/default", "memory_blocks": [{"label": "notes", "value": ""}]}
    ada = (
        await client.post("/v1/agents", json={**body, "metadata": {"scripted": {"steps": [[APPEND_TEA]] * 3}}})
    ).json()
    capped = await agent_stream(client, ada["id"], {"input": "note it", "max_steps": 2})
    assert capped[-2]["stop_reason"] == "max_steps"
    assert [e["message_type"] for e in capped].count("tool_call_message") == 2
    only = await agent_stream(
        client, ada["id"], {"input": "again", "include_return_message_types": ["tool_return_message"]}
    )
    assert {e["message_type"] for e in only} == {"tool_return_message", "stop_reason", "usage_statistics"}
    assert [e["seq_id"] for e in only] == list(range(1, len(only) + 1))


async def test_one_active_run_per_agent_and_cancel(client: httpx.AsyncClient) -> None:
    slow = await create_agent(client, "Slow", **SLOW)
    started = await client.post(f"/v1/agents/{slow['id']}/messages/async", json={"input": "hi"})
    assert started.status_code == 200, started.text
    run = started.json()
    assert run["agent_id"] == slow["id"] and run["background"] is True and run["group_id"] is None
    busy = await client.post(f"/v1/agents/{slow['id']}/messages", json={"input": "again"})
    assert busy.status_code == 409
    assert busy.json()["run_id"] == run["id"] and f"Agent {slow['id']}" in busy.json()["detail"]
    reset = await client.patch(f"/v1/agents/{slow['id']}/reset-messages", json={})
    assert reset.status_code == 409 and reset.json()["run_id"] == run["id"]
    cancelled = await client.post(f"/v1/agents/{slow['id']}/messages/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json() == {run["id"]: "cancelled"}
    assert (await terminal_run(client, run["id"]))["status"] == "cancelled"
    nothing = await client.post(f"/v1/agents/{slow['id']}/messages/cancel")
    assert nothing.status_code == 409


@pytest.mark.both_stores
async def test_async_run_completes_and_is_resumable(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=3)
    started = await client.post(f"/v1/agents/{ada['id']}/messages/async", json={"input": "hi"})
    assert started.status_code == 200, started.text
    run = await terminal_run(client, started.json()["id"])
    assert run["status"] == "completed" and run["stop_reason"] == "end_turn" and run["agent_id"] == ada["id"]
    replay = payloads(parse_sse((await client.post(f"/v1/runs/{run['id']}/stream", json={})).text))
    assert [e["message_type"] for e in replay] == ["assistant_message", "stop_reason", "usage_statistics"]
    group = await create_group(client, [ada["id"]])
    for owner in (f"/v1/agents/{ada['id']}", f"/v1/groups/{group['id']}"):
        body = {"input": "hi", "callback_url": "http://169.254.169.254/"}
        callback = await client.post(f"{owner}/messages/async", json=body)
        assert callback.status_code == 400 and "callback_url" in callback.json()["detail"], "never a call out"


async def test_idempotency_key_returns_the_first_run(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=2)
    headers = {"Idempotency-Key": "send-1"}
    first = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hi"}, headers=headers)
    again = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hi"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert first.json()["messages"][0]["run_id"] == again.json()["messages"][0]["run_id"]
    assert len(await history(client, ada["id"])) == 2, "the retry ran nothing"
    other = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "other"}, headers=headers)
    assert other.status_code == 422


@pytest.mark.both_stores
async def test_approvals_pause_and_resume_the_agent(client: httpx.AsyncClient) -> None:
    body = {
        "name": "Ada",
        "model": "scripted/default",
        "metadata": {"scripted": {"steps": [[APPEND_TEA]], "replies": ["Saved."]}},
        "memory_blocks": [{"label": "notes", "value": ""}],
        "tool_rules": [{"type": "requires_approval", "tool_name": APPEND}],
    }
    ada = (await client.post("/v1/agents", json=body)).json()
    first = await agent_stream(client, ada["id"], {"input": "Remember that I like tea."})
    assert [e["message_type"] for e in first] == ["approval_request_message", "stop_reason", "usage_statistics"]
    assert first[1]["stop_reason"] == "requires_approval"
    busy = await client.post(f"/v1/agents/{ada['id']}/messages", json={"input": "hello?"})
    assert busy.status_code == 409 and busy.json()["run_id"] == first[0]["run_id"]
    assert "the agent's run" in busy.json()["detail"], "an agent's user hears of no group"
    call_id = first[0]["tool_call"]["tool_call_id"]
    answer = {"messages": [{"type": "approval", "approvals": [{"tool_call_id": call_id, "approve": True}]}]}
    second = await agent_stream(client, ada["id"], answer)
    again = await client.post(f"/v1/agents/{ada['id']}/messages", json=answer)
    assert again.status_code == 400 and "awaiting approval for this agent" in again.json()["detail"]
    kinds = [e["message_type"] for e in second]
    assert kinds[:2] == ["approval_response_message", "tool_return_message"] and second[-2]["stop_reason"] == "end_turn"
    block = (await client.get(f"/v1/agents/{ada['id']}/core-memory/blocks/notes")).json()
    assert block["value"] == "likes tea"


async def test_unknown_malformed_and_empty_are_404_422_422(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=1)
    sends = ["/messages", "/messages/stream", "/messages/async"]
    for suffix in sends:
        assert (await client.post(f"/v1/agents/{MISSING_AGENT}{suffix}", json={"input": "hi"})).status_code == 404
        malformed = await client.post(f"/v1/agents/agent-123{suffix}", json={"input": "hi"})
        assert malformed.status_code == 422 and "examples" in malformed.json()
        empties: list[dict[str, Any]] = [{}, {"input": ""}, {"messages": []}]
        for empty in empties:
            assert (await client.post(f"/v1/agents/{ada['id']}{suffix}", json=empty)).status_code == 422
    assert (await client.get(f"/v1/agents/{MISSING_AGENT}/messages")).status_code == 404
    assert (await client.patch(f"/v1/agents/{MISSING_AGENT}/reset-messages")).status_code == 404
    assert (await client.post(f"/v1/agents/{MISSING_AGENT}/messages/cancel")).status_code == 404
    assert (await client.get("/v1/agents/agent-123/messages")).status_code == 422
    assert (await client.get(f"/v1/groups/{solo_group_id(MISSING_AGENT)}")).status_code == 404


@pytest.mark.both_stores
async def test_the_hidden_group_shows_nowhere(client: httpx.AsyncClient) -> None:
    ada = await create_agent(client, "Ada", tokens=1)
    group = await create_group(client, [ada["id"]])
    await agent_stream(client, ada["id"], {"input": "hi"})
    hidden = solo_group_id(ada["id"])
    assert [g["id"] for g in (await client.get("/v1/groups")).json()] == [group["id"]]
    assert (await client.get("/v1/groups", params={"limit": 1, "order": "asc"})).json()[0]["id"] == group["id"]
    for method, suffix in [
        ("GET", ""),
        ("PATCH", ""),
        ("DELETE", ""),
        ("GET", "/messages"),
        ("POST", "/messages"),
        ("POST", "/messages/stream"),
        ("POST", "/messages/async"),
        ("POST", "/messages/cancel"),
        ("PATCH", "/reset-messages"),
    ]:
        body = {"input": "hi"} if "messages" in suffix and method == "POST" and "cancel" not in suffix else {}
        response = await client.request(method, f"/v1/groups/{hidden}{suffix}", json=body)
        assert response.status_code == 404, (method, suffix, response.text)
    assert len(await history(client, ada["id"])) == 2, "nothing above touched the conversation"


@pytest.mark.both_stores
async def test_direct_and_group_conversations_are_apart(client: httpx.AsyncClient) -> None:
    ada, bo = await create_agent(client, "Ada", tokens=1), await create_agent(client, "Bo", tokens=1)
    group = await create_group(client, [ada["id"], bo["id"]])
    group_run = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "team"})
    assert group_run.status_code == 200
    direct = await agent_stream(client, ada["id"], {"input": "just you"})
    assert direct[0]["content"].startswith("Ada (turn 1):"), "the group's turn is not in the direct context"
    assert (await history(client, ada["id"], order="asc"))[0]["content"] == "just you"
    group_history = (await client.get(f"/v1/groups/{group['id']}/messages")).json()
    assert "just you" not in [m.get("content") for m in group_history]
    seen = await history(client, ada["id"], group_id=group["id"], order="asc")
    assert [m["id"] for m in seen] == [m["id"] for m in reversed(group_history)], "the group as its member sees it"
    stranger = await create_agent(client, "Cy", tokens=1)
    assert (
        await client.get(f"/v1/agents/{stranger['id']}/messages", params={"group_id": group["id"]})
    ).status_code == 404
    hidden = solo_group_id(bo["id"])
    assert (await client.get(f"/v1/agents/{bo['id']}/messages", params={"group_id": hidden})).status_code == 404
    conversation = await client.get(f"/v1/agents/{ada['id']}/messages", params={"conversation_id": "conv-1"})
    assert conversation.status_code == 404


@pytest.mark.both_stores
async def test_reset_and_delete_forget_the_direct_conversation(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    ada = await create_agent(client, "Ada", tokens=1)
    await agent_stream(client, ada["id"], {"input": "one"})
    reset = await client.patch(f"/v1/agents/{ada['id']}/reset-messages", json={"add_default_initial_messages": False})
    assert reset.status_code == 200 and reset.json()["id"] == ada["id"]
    assert await history(client, ada["id"]) == []
    again = await agent_stream(client, ada["id"], {"input": "two"})
    assert again[0]["content"].startswith("Ada (turn 1):"), "after a reset the agent starts afresh"
    assert (await client.delete(f"/v1/agents/{ada['id']}")).status_code == 200
    hidden = solo_group_id(ada["id"])
    assert await store.delete_group_messages("default", hidden) == 0, "its history went with it"
    assert (await client.get(f"/v1/agents/{ada['id']}/messages")).status_code == 404


async def test_the_tenants_active_run_limit_counts_agent_runs(make_app: Any) -> None:
    app = make_app(settings={"max_active_runs_per_tenant": 1})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            slow, other = await create_agent(client, "Slow", **SLOW), await create_agent(client, "Other", **SLOW)
            held = await client.post(f"/v1/agents/{slow['id']}/messages/async", json={"input": "hi"})
            assert held.status_code == 200
            refused = await client.post(f"/v1/agents/{other['id']}/messages/async", json={"input": "hi"})
            assert refused.status_code == 429 and refused.headers["Retry-After"]
            assert (await client.post(f"/v1/agents/{slow['id']}/messages/cancel")).status_code == 200
            await terminal_run(client, held.json()["id"])


@pytest.mark.both_stores
@pytest.mark.parametrize("delete_agent", [False, True])
async def test_the_next_server_recovers_an_agents_orphaned_run(make_app: Any, delete_agent: bool) -> None:
    first = make_app()
    async with first.router.lifespan_context(first):
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            ada = await create_agent(client, "Ada", tokens=2)
            await agent_stream(client, ada["id"], {"input": "first"})
            store: Store = first.state.services.store
            group = await store.get_group("default", solo_group_id(ada["id"]))
            orphan = RunRecord(  # what a server that died mid-run leaves: running, its lease long expired
                tenant_id="default",
                id=new_id("run"),
                created_at=now_iso(),
                agent_id=ada["id"],
                group_id=group.id,
                status="running",
                background=True,
                lease_owner="worker-dead",
                lease_expires_at=1.0,
                inputs=[{"role": "user", "content": "are you there?"}],
                options={"stream_tokens": False, "max_steps": 50},
            )
            await store.put_run(orphan)
            if delete_agent:
                await store.delete_agent("default", ada["id"])  # gone without the route's clean-up
    second = make_app()
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            final = await terminal_run(client, orphan.id)
            events = payloads(parse_sse((await client.post(f"/v1/runs/{orphan.id}/stream", json={})).text))
            if delete_agent:
                assert final["status"] == "failed" and "cannot continue" in events[-1]["message"]
            else:
                assert final["status"] == "completed" and final["group_id"] is None
                assert events[0]["content"].startswith("Ada (turn 2):"), "recovered with the agent's own history"
                assert len(await history(client, ada["id"])) == 4
