"""Conformance with Letta's own multi-agent tests, through `letta-client` 1.7.0 against real uvicorn.

Modelled on Letta's integration tests for groups and multi-agent tools
(round robin turn counts and `max_turns`; the supervisor's broadcast whose
tool return is a list of JSON strings `{"agent_id", "response_messages"}`,
parsed there with `ast.literal_eval` then `json.loads`; dynamic speaker
order and termination; sleeptime background runs in `usage.run_ids`), with
the scripted model in place of a paid one. The SDK validates every
response strictly and parses the SSE itself.
"""

from __future__ import annotations

import ast
import json
import time
from typing import Any

import pytest
from letta_client import APIError, Letta

from chorus.devserver import Server
from support.letta_tools import get_secret_code_tool

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server) -> Letta:
    return Letta(base_url=server.url, api_key="local", max_retries=0, _strict_response_validation=True)


def agents(client: Letta, *names: str, **scripts: dict[str, Any]) -> list[Any]:
    return [
        client.agents.create(
            name=name, model="scripted/default", system=f"You are {name}.", metadata={"scripted": scripts.get(name, {})}
        )
        for name in names
    ]


def test_round_robin_every_agent_speaks_once_by_default(client: Letta) -> None:
    team = agents(client, "A1", "A2", "A3", "A4")
    group = client.groups.create(agent_ids=[a.id for a in team], description="round robin")
    response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "what is the plan?"}])
    spoken = [m for m in response.messages if m.message_type == "assistant_message"]
    assert [m.sender_id for m in spoken] == [a.id for a in team]
    assert response.usage.step_count == len(team)
    assert response.stop_reason.stop_reason == "end_turn"


def test_round_robin_max_turns_counts_turns_not_agents(client: Letta) -> None:
    team = agents(client, "B1", "B2")
    group = client.groups.create(
        description="conformance",
        agent_ids=[a.id for a in team],
        manager_config={"manager_type": "round_robin", "max_turns": 5},
    )
    response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "go"}])
    spoken = [m.sender_id for m in response.messages if m.message_type == "assistant_message"]
    assert spoken == [team[0].id, team[1].id] * 2 + [team[0].id]
    assert response.usage.step_count == 5


def test_supervisor_broadcast_collects_a_reply_from_every_worker(client: Letta) -> None:
    secret = "banana"
    boss, *workers = agents(
        client,
        "Supervisor",
        "W1",
        "W2",
        Supervisor={"calls": [{"name": "send_message_to_all_agents_in_group", "arguments": {"message": secret}}]},
    )
    group = client.groups.create(
        description="conformance",
        agent_ids=[w.id for w in workers],
        manager_config={"manager_type": "supervisor", "manager_agent_id": boss.id},
    )
    assert group.manager_agent_id == boss.id
    response = client.groups.messages.create(
        group.id, messages=[{"role": "user", "content": f"Tell every worker the secret word: {secret}!"}]
    )
    (ret,) = [m for m in response.messages if m.message_type == "tool_return_message"]
    tool_response = ast.literal_eval(ret.tool_return)  # as Letta's test reads it
    assert len(tool_response) == len(workers)
    returned = set()
    for json_str in tool_response:
        entry = json.loads(json_str)
        assert entry["response_messages"] != ["<no response>"]
        returned.add(entry["agent_id"])
    assert returned == {w.id for w in workers}
    # the workers heard the secret from the supervisor: it is in the group's history, from the supervisor
    (call,) = [m for m in client.groups.messages.list(group.id) if m.message_type == "tool_call_message"]
    assert call.sender_id == boss.id and secret in call.tool_call.arguments
    # and the supervisor can still take messages
    again = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "So what did they say?"}])
    assert again.stop_reason.stop_reason == "end_turn"


def test_supervisor_stream_through_the_sdk(client: Letta) -> None:
    boss, *workers = agents(client, "Lead", "X1", "X2", "X3")
    group = client.groups.create(
        description="conformance",
        agent_ids=[w.id for w in workers],
        manager_config={"manager_type": "supervisor", "manager_agent_id": boss.id},
    )
    events = list(client.groups.messages.stream(group.id, input="split the work", stream_tokens=True))
    order: list[str] = []
    for e in events:
        if e.message_type in ("assistant_message", "tool_call_message", "tool_return_message"):
            key = f"{e.message_type}:{e.name}"
            if not order or order[-1] != key:
                order.append(key)
    assert order == [
        "tool_call_message:Lead",
        "assistant_message:X1",
        "assistant_message:X2",
        "assistant_message:X3",
        "tool_return_message:Lead",
        "assistant_message:Lead",
    ]
    assert events[-1].message_type == "usage_statistics" and events[-1].step_count == 5
    assert [e.seq_id for e in events] == list(range(1, len(events) + 1))


def test_dynamic_speaker_order_and_termination(client: Letta) -> None:
    boss, ada, bo = agents(
        client, "Chair", "Ada", "Bo", Chair={"replies": ["Bo", "Ada", "Bo"]}, Bo={"replies": ["ok", "we are DONE!"]}
    )
    group = client.groups.create(
        description="conformance",
        agent_ids=[ada.id, bo.id],
        manager_config={"manager_type": "dynamic", "manager_agent_id": boss.id, "max_turns": 10},
    )
    assert group.termination_token == "DONE!"
    response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "debate"}])
    speakers = [m.name for m in response.messages if m.message_type == "assistant_message"]
    assert speakers == ["Chair", "Bo", "Chair", "Ada", "Chair", "Bo"]
    assert response.stop_reason.stop_reason == "end_turn"
    assert response.usage.step_count == 6


def test_dynamic_max_turns_bounds_the_conversation(client: Letta) -> None:
    boss, *team = agents(client, "Host", "P1", "P2", "P3")
    group = client.groups.create(
        description="conformance",
        agent_ids=[a.id for a in team],
        manager_config={"manager_type": "dynamic", "manager_agent_id": boss.id, "max_turns": 2},
    )
    response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "talk"}])
    assert response.usage.step_count == 2 * 2  # each turn: the manager chooses, the participant speaks
    assert response.stop_reason.stop_reason == "max_steps"


def test_sleeptime_background_runs_are_announced_and_complete(client: Letta) -> None:
    main, memory = agents(client, "Main", "Memory")
    group = client.groups.create(
        description="conformance",
        agent_ids=[memory.id],
        manager_config={"manager_type": "sleeptime", "manager_agent_id": main.id},
    )
    response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "remember: tea"}])
    run_ids = response.usage.run_ids or []
    assert len(run_ids) == 2
    deadline = time.monotonic() + 10
    while (run := client.runs.retrieve(run_ids[1])).status not in ("completed", "failed"):
        assert time.monotonic() < deadline, "the sleeptime run never finished"
        time.sleep(0.02)
    assert run.status == "completed" and run.agent_id == memory.id and run.background
    assert client.groups.retrieve(group.id).turns_counter == 1


def test_human_in_the_loop_through_the_sdk(client: Letta) -> None:
    """After Letta's human-in-the-loop tests: request, wrong id, pending conflict, approve, deny, client return."""
    tool = client.tools.upsert_from_function(func=get_secret_code_tool, default_requires_approval=True)
    assert tool.name == "get_secret_code_tool" and tool.default_requires_approval
    calls = [{"name": "get_secret_code_tool", "arguments": {"input_text": "hello world"}}]
    agent = client.agents.create(
        name="approver",
        model="scripted/default",
        tool_ids=[tool.id],
        metadata={"scripted": {"steps": [calls], "replies": ["Here is the code."]}},
    )
    group = client.groups.create(agent_ids=[agent.id], description="hitl")

    def ask() -> str:
        response = client.groups.messages.create(group.id, messages=[{"role": "user", "content": "code?"}])
        last = response.messages[-1]
        assert last.message_type == "approval_request_message" and last.tool_call.name == "get_secret_code_tool"
        assert response.stop_reason.stop_reason == "requires_approval"
        return str(last.tool_call.tool_call_id)

    def answer(**approval: Any) -> Any:
        return client.groups.messages.create(group.id, messages=[{"type": "approval", "approvals": [approval]}])

    call_id = ask()
    with pytest.raises(APIError, match="Invalid tool call IDs"):
        answer(type="approval", tool_call_id="call_fake", approve=True)
    with pytest.raises(APIError, match="approve or deny the pending request"):
        client.groups.messages.create(group.id, messages=[{"role": "user", "content": "hi"}])
    approved = answer(type="approval", tool_call_id=call_id, approve=True)
    kinds = [m.message_type for m in approved.messages]
    assert kinds[:2] == ["approval_response_message", "tool_return_message"]
    assert approved.messages[1].status == "success" and approved.messages[1].tool_call_id == call_id
    denied = answer(type="approval", tool_call_id=ask(), approve=False, reason="not now")
    assert denied.messages[1].status == "error" and "not now" in denied.messages[1].tool_return
    returned = answer(type="tool", tool_call_id=ask(), tool_return="42", status="success")
    assert returned.messages[1].tool_return == "42"
    events = list(
        client.groups.messages.stream(group.id, messages=[{"role": "user", "content": "again"}], stream_tokens=True)
    )
    assert [e.message_type for e in events][-3:] == ["approval_request_message", "stop_reason", "usage_statistics"]
