"""`client.agents.messages.*` of the official SDK, `letta-client` 1.7.0, against real uvicorn, strictly validated.

What a Letta user does first after creating an agent: talk to it, stream it, read its history,
start it in the background, cancel it, reset it. (On DynamoDB and Step Functions:
`test_step_functions_e2e.py`.)
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from letta_client import ConflictError, Letta, NotFoundError, UnprocessableEntityError

from chorus.devserver import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server) -> Letta:
    return Letta(base_url=server.url, api_key="local", max_retries=0, _strict_response_validation=True)


def make_agent(client: Letta, name: str = "Ada", **script: Any) -> Any:
    return client.agents.create(name=name, model="scripted/default", metadata={"scripted": script or {"tokens": 3}})


def until_terminal(client: Letta, run_id: str) -> Any:
    for _ in range(2000):
        run = client.runs.retrieve(run_id)
        if run.status not in ("created", "running"):
            return run
        time.sleep(0.01)
    raise AssertionError(f"run {run_id} never ended")


def test_create_stream_and_list_through_the_sdk(client: Letta) -> None:
    agent = make_agent(client)
    response = client.agents.messages.create(agent.id, input="hello")
    assert [m.message_type for m in response.messages] == ["assistant_message"]
    assert response.stop_reason.stop_reason == "end_turn" and response.usage.step_count == 1
    first = response.messages[0]
    assert first.message_type == "assistant_message" and first.sender_id == agent.id

    events = list(client.agents.messages.stream(agent.id, input="again", stream_tokens=True))
    assert [e.message_type for e in events][-2:] == ["stop_reason", "usage_statistics"]
    text = "".join(e.content for e in events if e.message_type == "assistant_message" and isinstance(e.content, str))
    assert text.startswith("Ada (turn 2):"), "the second send sees the first"
    run = client.runs.retrieve(events[0].run_id)
    assert run.status == "completed" and run.agent_id == agent.id

    streamed = list(client.agents.messages.create(agent.id, input="third", streaming=True))
    assert streamed[-2].message_type == "stop_reason"

    newest_first = list(client.agents.messages.list(agent.id))  # the SDK pages on through `after`
    assert [m.message_type for m in newest_first] == ["assistant_message", "user_message"] * 3
    oldest_first = client.agents.messages.list(agent.id, order="asc", limit=2).items
    assert [m.id for m in oldest_first] == [m.id for m in reversed(newest_first)][:2]
    after = client.agents.messages.list(agent.id, order="asc", after=oldest_first[-1].id, limit=1).items
    assert [m.id for m in after] == [newest_first[-3].id]
    two_pages = list(client.agents.messages.list(agent.id, limit=4))
    assert [m.id for m in two_pages] == [m.id for m in newest_first]


def test_create_async_completes_and_resumes(client: Letta) -> None:
    agent = make_agent(client)
    run = client.agents.messages.create_async(agent.id, input="in the background")
    assert run.agent_id == agent.id and run.background is True
    done = until_terminal(client, run.id)
    assert done.status == "completed" and done.stop_reason == "end_turn"
    replay = list(client.runs.messages.stream(run.id))
    assert [e.message_type for e in replay] == ["assistant_message", "stop_reason", "usage_statistics"]


def test_busy_agent_cancel_and_reset(client: Letta) -> None:
    agent = make_agent(client, "Slow", tokens=2, delay_s=60)
    run = client.agents.messages.create_async(agent.id, input="take your time")
    with pytest.raises(ConflictError) as busy:
        client.agents.messages.create(agent.id, input="are you there?")
    assert run.id in str(busy.value)
    assert client.agents.messages.cancel(agent.id) == {run.id: "cancelled"}
    assert until_terminal(client, run.id).status == "cancelled"
    reset = client.agents.messages.reset(agent.id)
    assert reset is not None and reset.id == agent.id
    assert list(client.agents.messages.list(agent.id)) == []


def test_errors_map_to_sdk_exceptions(client: Letta) -> None:
    missing = "agent-00000000-0000-4000-8000-000000000000"
    with pytest.raises(NotFoundError):
        client.agents.messages.create(missing, input="hi")
    with pytest.raises(NotFoundError):
        client.agents.messages.list(missing)
    with pytest.raises(UnprocessableEntityError):
        client.agents.messages.create("agent-123", input="hi")
    with pytest.raises(UnprocessableEntityError):
        client.agents.messages.create(make_agent(client).id)
