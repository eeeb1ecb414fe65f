"""The main endpoint and its non-streaming twin, through the ASGI app."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from chorus.schemas.messages import LettaResponse
from support import SSE, create_agent, create_group, parse_sse, payloads, stream

MISSING_GROUP = "group-00000000-0000-4000-8000-000000000000"


async def _trio(client: httpx.AsyncClient, **scripted: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    agents = [await create_agent(client, name, **scripted) for name in ("Ada", "Brook", "Cyd")]
    group = await create_group(client, [a["id"] for a in agents])
    return agents, group


def _assert_gapless(events: list[SSE]) -> None:
    seqs = [e.json["seq_id"] for e in events[:-1] if e.json["message_type"] != "ping"]
    assert seqs == list(range(1, len(seqs) + 1))
    for e in events[:-1]:
        if e.json["message_type"] != "ping":
            assert e.id == str(e.json["seq_id"]), "the SSE id is the seq_id"


@pytest.mark.both_stores
async def test_round_robin_streams_each_agent_in_order(client: httpx.AsyncClient) -> None:
    agents, group = await _trio(client, tokens=4)
    events = await stream(client, group["id"], {"input": "hello team"})
    body = payloads(events)
    kinds = [e["message_type"] for e in body]
    assert kinds == ["assistant_message"] * 3 + ["stop_reason", "usage_statistics"]
    for event, agent in zip(body[:3], agents, strict=True):
        assert event["name"] == agent["name"]
        assert event["sender_id"] == agent["id"]
        assert event["content"].startswith(f"{agent['name']} (turn 1):")
        assert event["id"].startswith("message-") and event["step_id"].startswith("step-")
        assert event["date"].endswith("+00:00")
    run_ids = {e["run_id"] for e in body[:3]}
    assert len(run_ids) == 1
    assert body[3] == {"message_type": "stop_reason", "stop_reason": "end_turn", "seq_id": 4}
    usage = body[4]
    assert usage["step_count"] == 3
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + 12
    assert usage["run_ids"] == list(run_ids)
    _assert_gapless(events)


@pytest.mark.both_stores
async def test_token_streaming_chunks_share_the_message_id(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=5)
    events = payloads(await stream(client, group["id"], {"input": "hi", "stream_tokens": True}))
    chunks = [e for e in events if e["message_type"] == "assistant_message"]
    assert len(chunks) == 15
    by_id: dict[str, list[dict[str, Any]]] = {}
    for chunk in chunks:
        by_id.setdefault(chunk["id"], []).append(chunk)
    assert len(by_id) == 3
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    said = {m["id"]: m["content"] for m in history if m["message_type"] == "assistant_message"}
    for message_id, parts in by_id.items():
        assert len({p["sender_id"] for p in parts}) == 1
        assert "".join(p["content"] for p in parts) == said[message_id]


async def test_non_streaming_returns_one_letta_response(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=3)
    response = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "hi"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    LettaResponse.model_validate(body)
    assert [m["name"] for m in body["messages"]] == ["Ada", "Brook", "Cyd"]
    assert body["stop_reason"] == {"message_type": "stop_reason", "stop_reason": "end_turn"}
    assert body["usage"]["step_count"] == 3


async def test_messages_route_streams_when_asked(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=2)
    response = await client.post(
        f"/v1/groups/{group['id']}/messages", json={"input": "hi", "streaming": True, "stream_tokens": True}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    body = payloads(parse_sse(response.text))
    assert sum(e["message_type"] == "assistant_message" for e in body) == 6


@pytest.mark.parametrize(
    ("extra", "names"),
    [
        ({"stream_tokens": True}, "stream_tokens"),
        ({"include_pings": False, "background": True}, "include_pings, background"),
    ],
)
async def test_streaming_options_without_streaming_are_422(
    client: httpx.AsyncClient, extra: dict[str, Any], names: str
) -> None:
    _, group = await _trio(client)
    response = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "hi", **extra})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("Streaming options set without streaming enabled.")
    assert names in response.json()["detail"]
    runs_started = (await client.get(f"/v1/groups/{group['id']}/messages")).json()
    assert runs_started == [], "a rejected request starts nothing"


@pytest.mark.both_stores
async def test_history_persists_and_next_run_sees_it(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=2)
    await stream(client, group["id"], {"input": "first"})
    second = payloads(await stream(client, group["id"], {"input": "second"}))
    assert second[0]["content"].startswith("Ada (turn 2):"), "Ada saw her own first answer"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    kinds = [(m["message_type"], m.get("name")) for m in history]
    expected_run = [
        ("user_message", None),
        ("assistant_message", "Ada"),
        ("assistant_message", "Brook"),
        ("assistant_message", "Cyd"),
    ]
    assert kinds == expected_run * 2
    assert history[0]["content"] == "first" and history[4]["content"] == "second"
    assert all(m["seq_id"] is None for m in history)
    newest = (await client.get(f"/v1/groups/{group['id']}/messages", params={"limit": 2})).json()
    assert [m["name"] for m in newest] == ["Cyd", "Brook"]
    page = (
        await client.get(
            f"/v1/groups/{group['id']}/messages", params={"after": history[3]["id"], "order": "asc", "limit": 1}
        )
    ).json()
    assert [m["id"] for m in page] == [history[4]["id"]]
    reset = await client.patch(f"/v1/groups/{group['id']}/reset-messages")
    assert reset.status_code == 200
    assert (await client.get(f"/v1/groups/{group['id']}/messages")).json() == []


async def test_max_turns_wraps_around_the_group(client: httpx.AsyncClient) -> None:
    agents = [await create_agent(client, n, tokens=1) for n in ("A", "B", "C")]
    group = await create_group(client, [a["id"] for a in agents], {"manager_type": "round_robin", "max_turns": 5})
    body = payloads(await stream(client, group["id"], {"input": "go"}))
    speakers = [e["name"] for e in body if e["message_type"] == "assistant_message"]
    assert speakers == ["A", "B", "C", "A", "B"]
    assert body[-1]["step_count"] == 5


@pytest.mark.both_stores
async def test_include_return_message_types_filters_and_keeps_seq_gapless(client: httpx.AsyncClient) -> None:
    agent = await create_agent(client, "Thinker", tokens=2, reasoning="let me think")
    group = await create_group(client, [agent["id"]])
    events = await stream(client, group["id"], {"input": "hi", "include_return_message_types": ["reasoning_message"]})
    body = payloads(events)
    assert [e["message_type"] for e in body] == ["reasoning_message", "stop_reason", "usage_statistics"]
    assert body[0]["reasoning"] == "let me think"
    _assert_gapless(events)
    everything = payloads(await stream(client, group["id"], {"input": "hi"}))
    assert [e["message_type"] for e in everything][:2] == ["reasoning_message", "assistant_message"]


async def test_content_parts_and_messages_form(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=1)
    body = {
        "messages": [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look at this"},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
                ],
                "otid": "client-otid-1",
            }
        ]
    }
    payloads(await stream(client, group["id"], body))
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert history[0]["message_type"] == "user_message"
    assert history[0]["otid"] == "client-otid-1"
    assert history[0]["content"][0] == {"type": "text", "text": "look at this", "signature": None}


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({}, "exactly one of 'messages' or 'input'"),
        ({"input": "a", "messages": [{"role": "user", "content": "b"}]}, "exactly one"),
        ({"input": "hi", "max_steps": "many"}, "body.max_steps"),
        ({"input": "hi", "max_steps": 0}, "body.max_steps"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "role"),
        ({"input": "hi", "include_return_message_types": ["bogus"]}, "include_return_message_types"),
        ({"input": [{"type": "image", "source": {"type": "base64"}}]}, "data"),
    ],
)
async def test_invalid_bodies_are_422_with_field_paths(
    client: httpx.AsyncClient, body: dict[str, Any], needle: str
) -> None:
    _, group = await _trio(client)
    response = await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)
    assert response.status_code == 422, response.text
    assert needle in response.json()["detail"]
    assert isinstance(response.json()["errors"], list)


async def test_not_json_is_422(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client)
    response = await client.post(
        f"/v1/groups/{group['id']}/messages/stream", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


async def test_bad_and_unknown_group_ids(client: httpx.AsyncClient) -> None:
    bad = await client.post("/v1/groups/group-123/messages/stream", json={"input": "hi"})
    assert bad.status_code == 422
    assert bad.json()["examples"] == ["group-123e4567-e89b-42d3-8456-426614174000"]
    missing = await client.post(f"/v1/groups/{MISSING_GROUP}/messages", json={"input": "hi"})
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"Group not found: {MISSING_GROUP}"}


async def test_approval_without_pending_request_is_400(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client)
    body = {
        "messages": [{"type": "approval", "approvals": [{"type": "approval", "tool_call_id": "t1", "approve": True}]}]
    }
    response = await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)
    assert response.status_code == 400
    assert "No tool call is currently awaiting approval" in response.json()["detail"]


async def test_deprecated_fields_are_accepted(client: httpx.AsyncClient) -> None:
    _, group = await _trio(client, tokens=1)
    body = {
        "input": "hi",
        "use_assistant_message": True,
        "assistant_message_tool_name": "send_message",
        "assistant_message_tool_kwarg": "message",
        "enable_thinking": "true",
        "some_future_field": 1,
    }
    assert payloads(await stream(client, group["id"], body))[-2]["stop_reason"] == "end_turn"


@pytest.mark.parametrize(
    ("error", "stop", "status"),
    [
        ("llm_api_error", "llm_api_error", 502),
        ("rate_limit", "llm_api_error", 429),
        ("timeout", "llm_api_error", 504),
        ("invalid_llm_response", "invalid_llm_response", 502),
    ],
)
async def test_model_failure_mid_stream(client: httpx.AsyncClient, error: str, stop: str, status: int) -> None:
    ok = await create_agent(client, "Ok", tokens=2)
    bad = await create_agent(client, "Bad", tokens=5, error=error, error_after_tokens=2)
    group = await create_group(client, [ok["id"], bad["id"]])
    events = await stream(client, group["id"], {"input": "hi", "stream_tokens": True})
    assert events[-1].data == "[DONE]"
    body = [e.json for e in events[:-1]]
    kinds = [e["message_type"] for e in body]
    assert kinds == ["assistant_message"] * 4 + ["stop_reason", "error_message"]
    assert body[4]["stop_reason"] == stop
    assert events[-2].event == "error"
    error_event = body[5]
    assert error_event["run_id"] == body[0]["run_id"]
    assert error_event["error_type"] and error_event["message"]
    _assert_gapless(events)
    run = (await client.get(f"/v1/runs/{body[0]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == stop
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m.get("name") for m in history] == [None, "Ok"], "the failed step's partial output is not history"

    response = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "again"})
    assert response.status_code == status
    assert "model" in response.json()["detail"].lower()


async def test_run_record_after_a_send(client: httpx.AsyncClient) -> None:
    agents, group = await _trio(client, tokens=2)
    body = payloads(await stream(client, group["id"], {"input": "hi"}))
    run_id = body[0]["run_id"]
    run = (await client.get(f"/v1/runs/{run_id}")).json()
    assert run["id"] == run_id
    assert run["status"] == "completed" and run["stop_reason"] == "end_turn"
    assert run["group_id"] == group["id"] and run["agent_id"] == agents[0]["id"]
    assert run["background"] is False
    assert run["ttft_ns"] > 0 and run["total_duration_ns"] >= run["ttft_ns"]
    assert run["completed_at"] and run["created_at"]
    assert run["metadata"]["run_type"] == "send_message_streaming"
    assert run["request_config"]["include_return_message_types"] is None
    messages = (await client.get(f"/v1/runs/{run_id}/messages")).json()
    assert [m["message_type"] for m in messages] == ["user_message"] + ["assistant_message"] * 3
    usage = (await client.get(f"/v1/runs/{run_id}/usage")).json()
    assert usage["completion_tokens"] == 6
    missing = await client.get("/v1/runs/run-00000000-0000-4000-8000-000000000000")
    assert missing.status_code == 404


async def test_group_with_a_deleted_agent_is_400_at_send(client: httpx.AsyncClient) -> None:
    agents, group = await _trio(client)
    await client.delete(f"/v1/agents/{agents[1]['id']}")
    response = await client.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "hi"})
    assert response.status_code == 400
    assert agents[1]["id"] in response.json()["detail"]
