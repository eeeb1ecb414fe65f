"""Every manager type through the API, with the scripted model scripted per agent.

Each test asserts the exact event sequence a client receives (speaker by
speaker), in step streaming, token streaming and non-streaming modes, and
what the agents were shown (their model requests, captured by a recording
resolver).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.engine.tools import BROADCAST
from support import Recorder, create_agent, create_group, parse_sse, payloads, replies, stream


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def client(make_app: Callable[..., FastAPI], recorder: Recorder) -> AsyncIterator[httpx.AsyncClient]:
    app = make_app(resolver=recorder)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c


def said(events: list[dict[str, Any]]) -> list[tuple[str, str | None, str]]:
    """(type, speaker, text) of each message event: what a reader of the stream sees."""
    out = []
    for e in events:
        kind = e["message_type"]
        if kind == "assistant_message":
            out.append((kind, e["name"], e["content"]))
        elif kind == "tool_call_message":
            out.append((kind, e["name"], e["tool_call"]["name"]))
        elif kind == "tool_return_message":
            out.append((kind, e["name"], e["status"]))
        elif kind in ("stop_reason",):
            out.append((kind, None, e["stop_reason"]))
    return out


async def team(client: httpx.AsyncClient, manager: dict[str, Any], **workers: dict[str, Any]) -> list[str]:
    ids = [(await create_agent(client, "Boss", **manager))["id"]]
    for name, script in workers.items():
        ids.append((await create_agent(client, name, **script))["id"])
    return ids


# supervisor

BROADCAST_CALL = {"calls": [{"name": BROADCAST, "arguments": {"message": "Each of you: one idea."}}]}


async def supervisor(client: httpx.AsyncClient, **workers: Any) -> tuple[list[str], dict[str, Any]]:
    ids = await team(client, {**BROADCAST_CALL, "replies": ["Summary from Boss."]}, **workers)
    group = await create_group(client, ids[1:], {"manager_type": "supervisor", "manager_agent_id": ids[0]})
    return ids, group


# Ada is the slowest worker and Cy the fastest, yet the stream keeps agent_ids order.
SLOW_FIRST = {
    "Ada": {"replies": ["Ada idea."], "delay_s": 0.03},
    "Bo": {"replies": ["Bo idea."], "delay_s": 0.01},
    "Cy": {"replies": ["Cy idea."]},
}


SUPERVISOR_SAID = [
    ("tool_call_message", "Boss", BROADCAST),
    ("assistant_message", "Ada", "Ada idea."),
    ("assistant_message", "Bo", "Bo idea."),
    ("assistant_message", "Cy", "Cy idea."),
    ("tool_return_message", "Boss", "success"),
    ("assistant_message", "Boss", "Summary from Boss."),
]


@pytest.mark.both_stores
async def test_supervisor_broadcasts_and_answers_from_the_replies(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    ids, group = await supervisor(client, **SLOW_FIRST)
    events = payloads(await stream(client, group["id"], {"input": "Brainstorm."}))
    assert said(events) == [*SUPERVISOR_SAID, ("stop_reason", None, "end_turn")]
    assert [e["sender_id"] for e in events if e["message_type"] == "assistant_message"] == [*ids[1:], ids[0]]
    call = next(e for e in events if e["message_type"] == "tool_call_message")
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    assert ret["tool_call_id"] == call["tool_call"]["tool_call_id"]
    assert replies(ret["tool_return"]) == [
        {"agent_id": ids[1], "name": "Ada", "response_messages": ["Ada idea."]},
        {"agent_id": ids[2], "name": "Bo", "response_messages": ["Bo idea."]},
        {"agent_id": ids[3], "name": "Cy", "response_messages": ["Cy idea."]},
    ]
    usage = events[-1]
    assert usage["message_type"] == "usage_statistics"
    assert usage["step_count"] == 5  # manager broadcast + 3 workers + manager answer
    assert usage["completion_tokens"] == 3 + 2 * 3 + 3 and usage["run_ids"] == [events[0]["run_id"]]
    assert [e["seq_id"] for e in events] == list(range(1, len(events) + 1))

    # what each agent saw: workers get the broadcast as the manager's message; the manager
    # gets the replies once, as the tool's return, right after its call
    for name in ("Ada", "Bo", "Cy"):
        (request,) = recorder.requests[name]
        assert [(m.role, m.content) for m in request.messages] == [
            ("user", "Brainstorm."),
            ("user", "Boss: Each of you: one idea."),
        ]
        assert request.tools == ()
    first, second = recorder.requests["Boss"]
    assert [t.name for t in first.tools] == [BROADCAST] == [t.name for t in second.tools]
    assert [m.role for m in second.messages] == ["user", "assistant", "tool"]
    assert second.messages[1].tool_calls[0].name == BROADCAST
    assert second.messages[2].tool_call_id == second.messages[1].tool_calls[0].id


async def test_supervisor_token_streaming_never_interleaves_workers(client: httpx.AsyncClient) -> None:
    _, group = await supervisor(client, **SLOW_FIRST)
    events = payloads(await stream(client, group["id"], {"input": "Go.", "stream_tokens": True}))
    speakers: list[str] = []
    for e in events:
        if e["message_type"] == "assistant_message" and (not speakers or speakers[-1] != e["name"]):
            speakers.append(e["name"])
    assert speakers == ["Ada", "Bo", "Cy", "Boss"]
    text: dict[str, str] = {}
    for e in events:
        if e["message_type"] == "assistant_message":
            text[e["id"]] = text.get(e["id"], "") + e["content"]
    assert list(text.values()) == ["Ada idea.", "Bo idea.", "Cy idea.", "Summary from Boss."]
    assert events[-2]["stop_reason"] == "end_turn"


async def test_supervisor_non_streaming_and_history(client: httpx.AsyncClient) -> None:
    _, group = await supervisor(client, **SLOW_FIRST)
    response = await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "Go."})
    assert response.status_code == 200, response.text
    body = response.json()
    assert said(body["messages"]) == SUPERVISOR_SAID
    assert body["stop_reason"]["stop_reason"] == "end_turn" and body["usage"]["step_count"] == 5
    run_id = body["messages"][0]["run_id"]
    stored = (await client.get(f"/v1/runs/{run_id}/messages", params={"order": "asc"})).json()
    assert stored[0]["message_type"] == "user_message"
    assert [m["id"] for m in stored[1:]] == [m["id"] for m in body["messages"]]
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [(m["message_type"], m["name"]) for m in history] == [
        ("user_message", None),
        ("tool_call_message", "Boss"),
        ("assistant_message", "Ada"),
        ("assistant_message", "Bo"),
        ("assistant_message", "Cy"),
        ("tool_return_message", "Boss"),
        ("assistant_message", "Boss"),
    ]


@pytest.mark.both_stores
async def test_supervisor_worker_failure_is_its_reply_and_the_run_goes_on(client: httpx.AsyncClient) -> None:
    workers = {
        "Ada": {"replies": ["Ada idea."]},
        "Bo": {"replies": ["never finished"], "error": "llm_api_error", "error_after_tokens": 1},
        "Cy": {"replies": ["Cy idea."]},
    }
    _, group = await supervisor(client, **workers)
    events = payloads(await stream(client, group["id"], {"input": "Go.", "stream_tokens": True}))
    marker = next(e for e in events if e["message_type"] == "ping")
    bo_chunks = [e for e in events if e["message_type"] == "assistant_message" and e["name"] == "Bo"]
    assert bo_chunks and marker["abandoned"]["message_ids"] == [bo_chunks[0]["id"]]
    assert "model failed" in marker["abandoned"]["reason"]
    ret = next(e for e in events if e["message_type"] == "tool_return_message")
    entries = replies(ret["tool_return"])
    assert [e["name"] for e in entries] == ["Ada", "Bo", "Cy"]
    assert "error" in entries[1] and "response_messages" not in entries[1]
    assert entries[2]["response_messages"] == ["Cy idea."]
    assert events[-2]["stop_reason"] == "end_turn"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert "Bo" not in [m["name"] for m in history]  # the failed attempt is not history


async def test_supervisor_manager_failure_fails_the_run(client: httpx.AsyncClient) -> None:
    ids = await team(client, {"error": "rate_limit"}, Ada={})
    group = await create_group(client, ids[1:], {"manager_type": "supervisor", "manager_agent_id": ids[0]})
    events = await stream(client, group["id"], {"input": "Go."})
    assert [e.event for e in events][-2:] == ["error", None]
    stops = [e.json for e in events[:-1] if e.json["message_type"] == "stop_reason"]
    assert stops == [{"message_type": "stop_reason", "stop_reason": "llm_api_error", "seq_id": 1}]


async def test_supervisor_default_scripted_manager_broadcasts_the_task(client: httpx.AsyncClient) -> None:
    boss = await create_agent(client, "Boss")
    ada = await create_agent(client, "Ada")
    group = await create_group(client, [ada["id"]], {"manager_type": "supervisor", "manager_agent_id": boss["id"]})
    events = payloads(await stream(client, group["id"], {"input": "Ship it."}))
    call = next(e for e in events if e["message_type"] == "tool_call_message")
    assert json.loads(call["tool_call"]["arguments"]) == {"message": "Ship it."}
    assert [s[1] for s in said(events) if s[0] == "assistant_message"] == ["Ada", "Boss"]


async def test_supervisor_fan_out_respects_the_concurrency_bound(
    make_app: Callable[..., FastAPI], recorder: Recorder
) -> None:
    """With `CHORUS_FANOUT_CONCURRENCY=1` workers run one at a time, still in order, still complete."""
    app = make_app(resolver=recorder, settings={"fanout_concurrency": 1})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            _, group = await supervisor(client, **SLOW_FIRST)
            events = payloads(await stream(client, group["id"], {"input": "Go."}))
    assert [s[1] for s in said(events) if s[0] == "assistant_message"] == ["Ada", "Bo", "Cy", "Boss"]


# dynamic


async def dynamic(client: httpx.AsyncClient, choices: list[str], **config: Any) -> tuple[list[str], dict[str, Any]]:
    ids = await team(
        client,
        {"replies": choices},
        Ada={"replies": ["Ada speaks."]},
        Bo={"replies": ["Bo speaks."]},
        Cy={"replies": ["Cy speaks."]},
    )
    group = await create_group(client, ids[1:], {"manager_type": "dynamic", "manager_agent_id": ids[0], **config})
    return ids, group


async def test_dynamic_manager_picks_speakers_until_the_token(client: httpx.AsyncClient, recorder: Recorder) -> None:
    _, group = await dynamic(client, ["Bo, please.", "Now Ada.", "DONE!"], max_turns=5)
    events = payloads(await stream(client, group["id"], {"input": "Discuss."}))
    assert said(events) == [
        ("assistant_message", "Boss", "Bo, please."),
        ("assistant_message", "Bo", "Bo speaks."),
        ("assistant_message", "Boss", "Now Ada."),
        ("assistant_message", "Ada", "Ada speaks."),
        ("assistant_message", "Boss", "DONE!"),
        ("stop_reason", None, "end_turn"),
    ]
    assert events[-1]["step_count"] == 5
    # participants never see the manager's choices; the manager sees everything and its question
    (bo_request,) = recorder.requests["Bo"]
    assert [m.content for m in bo_request.messages] == ["Discuss."]
    (ada_request,) = recorder.requests["Ada"]
    assert [m.content for m in ada_request.messages] == ["Discuss.", "Bo: Bo speaks."]
    last_question = recorder.requests["Boss"][-1].messages
    assert last_question[-1].role == "user" and "[Bo, Cy]" in last_question[-1].content


async def test_dynamic_max_turns_ends_with_max_steps(client: httpx.AsyncClient) -> None:
    _, group = await dynamic(client, ["Ada", "Bo"], max_turns=2)
    events = payloads(await stream(client, group["id"], {"input": "Discuss.", "stream_tokens": True}))
    speakers: list[Any] = []
    for e in events:
        if e["message_type"] == "assistant_message" and (not speakers or speakers[-1] != e["name"]):
            speakers.append(e["name"])
    assert speakers == ["Boss", "Ada", "Boss", "Bo"]
    assert events[-2]["stop_reason"] == "max_steps"


async def test_dynamic_participant_token_ends_the_run_non_streaming(client: httpx.AsyncClient) -> None:
    ids = await team(client, {"replies": ["Cy"]}, Ada={}, Cy={"replies": ["All settled. STOP"]})
    config = {"manager_type": "dynamic", "manager_agent_id": ids[0], "termination_token": "STOP", "max_turns": 9}
    group = await create_group(client, ids[1:], config)
    body = (await client.post(f"/v1/groups/{group['id']}/messages", json={"input": "Go."})).json()
    assert said(body["messages"]) == [
        ("assistant_message", "Boss", "Cy"),
        ("assistant_message", "Cy", "All settled. STOP"),
    ]
    assert body["stop_reason"]["stop_reason"] == "end_turn"


# sleeptime


async def wait_runs(client: httpx.AsyncClient, run_ids: list[str]) -> list[dict[str, Any]]:
    for _ in range(400):
        runs = [(await client.get(f"/v1/runs/{r}")).json() for r in run_ids]
        if all(r["status"] in ("completed", "failed", "cancelled") for r in runs):
            return runs
        await asyncio.sleep(0.01)
    raise AssertionError(f"runs did not finish: {runs}")


@pytest.mark.both_stores
async def test_sleeptime_agents_run_as_their_own_runs_every_n_turns(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    ids = await team(client, {"replies": ["Noted."]}, Mem={"delay_s": 0.1}, Arc={"delay_s": 0.1})
    config = {"manager_type": "sleeptime", "manager_agent_id": ids[0], "sleeptime_agent_frequency": 2}
    group = await create_group(client, ids[1:], config)
    first = payloads(await stream(client, group["id"], {"input": "I like tea."}))
    assert said(first) == [("assistant_message", "Boss", "Noted."), ("stop_reason", None, "end_turn")]
    assert first[-1]["run_ids"] == [first[0]["run_id"]]
    second = payloads(await stream(client, group["id"], {"input": "And cake."}))
    run_id = second[0]["run_id"]
    run_ids = second[-1]["run_ids"]
    assert run_ids[0] == run_id and len(run_ids) == 3
    # the foreground run is finished (its stream read to the end) and did not wait for its background runs
    parent = (await client.get(f"/v1/runs/{run_id}")).json()
    assert parent["status"] == "completed"
    children = await wait_runs(client, run_ids[1:])
    ended = datetime.fromisoformat(parent["completed_at"])
    assert all(datetime.fromisoformat(c["completed_at"]) > ended for c in children)
    assert [c["agent_id"] for c in children] == ids[1:]
    assert all(c["status"] == "completed" and c["background"] for c in children)
    assert all(c["metadata"]["run_type"] == "sleeptime_agent_send_message_async" for c in children)
    assert all(c["metadata"]["parent_run_id"] == run_id and c["group_id"] is None for c in children)
    # each got the unprocessed conversation as a transcript, and answered in its own run
    (mem_request,) = recorder.requests["Mem"]
    transcript = mem_request.messages[-1].content
    assert "sleeptime agent" in transcript
    assert transcript.endswith("user: I like tea.\nBoss: Noted.\nuser: And cake.\nBoss: Noted.")
    child_messages = (await client.get(f"/v1/runs/{run_ids[1]}/messages", params={"order": "asc"})).json()
    assert [m["message_type"] for m in child_messages] == ["user_message", "assistant_message"]
    assert child_messages[1]["sender_id"] == ids[1]
    resumed = payloads(parse_sse((await client.post(f"/v1/runs/{run_ids[1]}/stream", json={})).text))
    assert resumed[-2]["stop_reason"] == "end_turn"
    # the group's history is the foreground conversation only; the counter and marker moved on
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["name"] for m in history if m["message_type"] == "assistant_message"] == ["Boss", "Boss"]
    state = (await client.get(f"/v1/groups/{group['id']}")).json()
    assert state["turns_counter"] == 2 and state["last_processed_message_id"] == history[-1]["id"]
    # the next due turn hands over only what is new since
    await stream(client, group["id"], {"input": "Tea again."})
    fourth = payloads(await stream(client, group["id"], {"input": "Bye."}))
    await wait_runs(client, fourth[-1]["run_ids"][1:])
    later = recorder.requests["Mem"][-1].messages[-1].content
    assert "I like tea." not in later and later.endswith("user: Tea again.\nBoss: Noted.\nuser: Bye.\nBoss: Noted.")


async def test_voice_sleeptime_buffers_then_evicts_to_the_sleeptime_agents(
    client: httpx.AsyncClient, recorder: Recorder
) -> None:
    ids = await team(client, {"replies": ["ok"]}, Mem={})
    config = {
        "manager_type": "voice_sleeptime",
        "manager_agent_id": ids[0],
        "max_message_buffer_length": 6,
        "min_message_buffer_length": 5,
    }
    group = await create_group(client, ids[1:], config)
    run_ids = []
    for i in range(4):
        events = payloads(await stream(client, group["id"], {"input": f"msg {i}"}))
        run_ids.append(events[-1]["run_ids"])
    # 2 messages per turn: the backlog passes 6 on turn 4 (8 messages): the oldest 3 are handed over
    assert [len(r) for r in run_ids] == [1, 1, 1, 2]
    await wait_runs(client, run_ids[-1][1:])
    transcript = recorder.requests["Mem"][0].messages[-1].content
    assert transcript.endswith("user: msg 0\nBoss: ok\nuser: msg 1")
    # the foreground agent only ever sees its buffer
    assert [len(r.messages) for r in recorder.requests["Boss"]] == [1, 3, 5, 6]


# steps per turn


async def test_max_steps_bounds_each_agent_turn(client: httpx.AsyncClient) -> None:
    looping = {"calls": [{"name": "lookup", "arguments": {"q": "x"}}], "replies": ["Found nothing."]}
    a = await create_agent(client, "Ada", **looping)
    b = await create_agent(client, "Bo", replies=["Bo here."])
    group = await create_group(client, [a["id"], b["id"]])
    events = payloads(await stream(client, group["id"], {"input": "Go.", "max_steps": 1}))
    assert said(events) == [
        ("tool_call_message", "Ada", "lookup"),
        ("tool_return_message", "Ada", "error"),
        ("assistant_message", "Bo", "Bo here."),
        ("stop_reason", None, "end_turn"),
    ]
    assert "not available" in next(e for e in events if e["message_type"] == "tool_return_message")["tool_return"]
    events = payloads(await stream(client, group["id"], {"input": "Again.", "max_steps": 2}))
    assert [s[1:] for s in said(events)][:3] == [("Ada", "lookup"), ("Ada", "error"), ("Ada", "Found nothing.")]
    assert events[-1]["step_count"] == 3


async def test_patch_group_changes_members_and_config_but_not_type(client: httpx.AsyncClient) -> None:
    ids, group = await supervisor(client, Ada={"replies": ["Ada idea."]}, Bo={"replies": ["Bo idea."]})
    patched = await client.patch(f"/v1/groups/{group['id']}", json={"agent_ids": [ids[2]]})
    assert patched.status_code == 200 and patched.json()["agent_ids"] == [ids[2]]
    events = payloads(await stream(client, group["id"], {"input": "Go."}))
    assert [s[1] for s in said(events) if s[0] == "assistant_message"] == ["Bo", "Boss"]
    refused = await client.patch(f"/v1/groups/{group['id']}", json={"manager_config": {"manager_type": "round_robin"}})
    assert refused.status_code == 400 and "cannot change" in refused.json()["detail"]
    emptied = await client.patch(f"/v1/groups/{group['id']}", json={"agent_ids": [ids[0]]})
    assert emptied.status_code == 400


@pytest.mark.both_stores
async def test_cancel_mid_fan_out_stops_every_worker_and_commits_none(client: httpx.AsyncClient) -> None:
    slow = {"replies": ["slow idea " * 20], "delay_s": 0.02}
    _, group = await supervisor(client, Ada=slow, Bo=slow, Cy=slow)
    run = (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "Go."})).json()
    for _ in range(500):  # until the workers are talking
        messages = (await client.get(f"/v1/groups/{group['id']}/messages")).json()
        if any(m["message_type"] == "tool_call_message" for m in messages):
            break
        await asyncio.sleep(0.01)
    cancelled = await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    assert cancelled.json() == {run["id"]: "cancelled"}
    final = await wait_runs(client, [run["id"]])
    assert final[0]["status"] == "cancelled" and final[0]["stop_reason"] == "cancelled"
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [(m["message_type"], m["name"]) for m in history] == [("user_message", None), ("tool_call_message", "Boss")]
    events = payloads(parse_sse((await client.post(f"/v1/runs/{run['id']}/stream", json={})).text))
    assert events[-1]["message_type"] == "stop_reason" and events[-1]["stop_reason"] == "cancelled"
    assert all(e.get("name") != "Bo" for e in events), "a worker behind the first never reached the stream"


MATRIX = {
    "round_robin": ({}, ["Ada", "Bo"]),
    "supervisor": ({}, ["Ada", "Bo", "Boss"]),
    "dynamic": ({"max_turns": 2}, ["Boss", "Ada", "Boss", "Bo"]),
    "sleeptime": ({}, ["Boss"]),
    "voice_sleeptime": ({}, ["Boss"]),
}


async def speakers_of(client: httpx.AsyncClient, group_id: str, mode: str) -> tuple[list[str], dict[str, Any]]:
    """Who spoke, in order, and the usage, for a send in `mode` (`steps`, `tokens` or `json`)."""
    if mode == "json":
        body = (await client.post(f"/v1/groups/{group_id}/messages", json={"input": "Go."})).json()
        events, usage = body["messages"], body["usage"]
    else:
        events = payloads(await stream(client, group_id, {"input": "Go.", "stream_tokens": mode == "tokens"}))
        usage = events[-1]
    names: list[str] = []
    for e in events:  # token chunks of one message share its speaker: count each speaker's turn once
        if e["message_type"] == "assistant_message" and (not names or names[-1] != e["name"]):
            names.append(e["name"])
    return names, usage


@pytest.mark.both_stores
@pytest.mark.parametrize("mode", ["steps", "tokens", "json"])
@pytest.mark.parametrize("kind", list(MATRIX))
async def test_every_manager_in_every_mode(client: httpx.AsyncClient, kind: str, mode: str) -> None:
    config, expected = MATRIX[kind]
    scripts = {"use_tools": False} if kind != "supervisor" else {}
    ids = await team(client, scripts, Ada={"use_tools": False}, Bo={"use_tools": False})
    manager_config: dict[str, Any] = {"manager_type": kind, **config}
    if kind != "round_robin":
        manager_config["manager_agent_id"] = ids[0]
    group = await create_group(client, ids[1:], manager_config)
    names, usage = await speakers_of(client, group["id"], mode)
    assert names == expected
    assert usage["step_count"] == len(expected) + (1 if kind == "supervisor" else 0)
    background = 2 if kind == "sleeptime" else 0
    assert len(usage["run_ids"]) == 1 + background
