"""The official Python SDK, `letta-client` 1.7.0, against real Chorus, with strict response validation."""

from __future__ import annotations

import itertools
import time
from typing import Any

import pytest
from letta_client import APIError, Letta, NotFoundError, UnprocessableEntityError

from chorus.devserver import Server

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(server: Server) -> Letta:
    return Letta(base_url=server.url, api_key="local", max_retries=0, _strict_response_validation=True)


def make_group(client: Letta, scripts: list[dict[str, Any]]) -> tuple[list[Any], Any]:
    agents = [
        client.agents.create(name=name, model="scripted/default", system=f"You are {name}.", metadata={"scripted": s})
        for name, s in zip(["Ada", "Brook", "Cyd"], scripts, strict=False)
    ]
    group = client.groups.create(agent_ids=[a.id for a in agents], description="e2e")
    return agents, group


def test_resources_validate_strictly(client: Letta) -> None:
    agents, group = make_group(client, [{"tokens": 2}] * 2)
    assert client.agents.retrieve(agents[0].id).name == "Ada"
    assert {a.id for a in client.agents.list()} >= {a.id for a in agents}
    fetched = client.groups.retrieve(group.id)
    assert fetched.manager_type == "round_robin" and fetched.agent_ids == [a.id for a in agents]
    assert group.id in {g.id for g in client.groups.list()}


def test_stream_steps(client: Letta) -> None:
    agents, group = make_group(client, [{"tokens": 5}] * 3)
    events = list(client.groups.messages.stream(group.id, input="hi"))
    kinds = [e.message_type for e in events]
    assert kinds == ["assistant_message"] * 3 + ["stop_reason", "usage_statistics"]
    assert [e.name for e in events[:3]] == ["Ada", "Brook", "Cyd"]
    assert [e.sender_id for e in events[:3]] == [a.id for a in agents]
    assert [e.seq_id for e in events] == [1, 2, 3, 4, 5]
    assert events[3].stop_reason == "end_turn"
    assert events[4].step_count == 3
    run = client.runs.retrieve(events[0].run_id)
    assert run.status == "completed" and run.stop_reason == "end_turn"


def test_stream_tokens_reassemble_to_history(client: Letta) -> None:
    _, group = make_group(client, [{"tokens": 6}] * 3)
    chunks: dict[str, list[str]] = {}
    for event in client.groups.messages.stream(group.id, input="hi", stream_tokens=True):
        if event.message_type == "assistant_message":
            chunks.setdefault(event.id, []).append(event.content)
    history = [m for m in client.groups.messages.list(group.id, order="asc") if m.message_type == "assistant_message"]
    assert [m.id for m in history] == list(chunks)
    assert ["".join(chunks[m.id]) for m in history] == [m.content for m in history]


def test_create_returns_letta_response(client: Letta) -> None:
    _, group = make_group(client, [{"tokens": 3}] * 2)
    response = client.groups.messages.create(group.id, input="hi")
    assert [m.name for m in response.messages] == ["Ada", "Brook"]
    assert response.stop_reason.stop_reason == "end_turn"
    assert response.usage.step_count == 2


def test_model_error_mid_stream_raises_after_the_good_part(client: Letta) -> None:
    _, group = make_group(client, [{"tokens": 2}, {"tokens": 5, "error": "llm_api_error", "error_after_tokens": 2}])
    seen: list[Any] = []
    with pytest.raises(APIError) as info:
        for event in client.groups.messages.stream(group.id, input="hi", stream_tokens=True):
            seen.append(event)
    assert [e.message_type for e in seen][-1] == "stop_reason"
    assert seen[-1].stop_reason == "llm_api_error"
    assert "model failed" in str(info.value)
    run = client.runs.retrieve(seen[0].run_id)
    assert run.status == "failed"


def test_errors_map_to_sdk_exceptions(client: Letta) -> None:
    with pytest.raises(NotFoundError):
        client.groups.messages.stream("group-00000000-0000-4000-8000-000000000000", input="hi")
    with pytest.raises(UnprocessableEntityError):
        client.groups.messages.create("group-123", input="hi")


def test_background_run_dropped_and_resumed_equals_an_uninterrupted_run(client: Letta) -> None:
    script = [{"tokens": 30, "delay_s": 0.005}] * 3
    _, reference_group = make_group(client, script)
    reference = list(client.groups.messages.stream(reference_group.id, input="hi", stream_tokens=True))

    _, group = make_group(client, script)
    stream = client.groups.messages.stream(group.id, input="hi", stream_tokens=True, background=True)
    received = []
    for event in stream:
        received.append(event)
        if len(received) == 10:
            break
    stream.close()  # the client goes away mid-run
    run_id = received[0].run_id
    resumed = list(client.runs.messages.stream(run_id, starting_after=received[-1].seq_id))
    whole = received + resumed
    assert [e.seq_id for e in whole] == list(range(1, len(whole) + 1))

    def conversation(events: list[Any]) -> list[tuple[str, str]]:
        texts: dict[str, list[str]] = {}
        names: dict[str, str] = {}
        for e in events:
            if e.message_type == "assistant_message":
                texts.setdefault(e.id, []).append(e.content)
                names[e.id] = e.name
        return [(names[i], "".join(t)) for i, t in texts.items()]

    assert conversation(whole) == conversation(reference)
    assert whole[-2].stop_reason == "end_turn"
    for _ in range(200):
        if client.runs.retrieve(run_id).status == "completed":
            break
        time.sleep(0.02)
    assert client.runs.retrieve(run_id).status == "completed"


def test_agent_tools_and_blocks_page_with_the_sdk_cursor(client: Letta) -> None:
    """The SDK's pager asks `after` the last id until a page is empty: ignoring the cursor looped forever."""
    source = (
        "def tool_{n}(x: int) -> int:\n    '''Add {n}.\n\n    Args:\n        x: a number\n    '''\n    return x + {n}\n"
    )
    tools = [client.tools.create(source_code=source.format(n=n)) for n in range(3)]
    agent = client.agents.create(
        name="Pager",
        model="scripted/default",
        memory_blocks=[{"label": f"b{n}", "value": str(n)} for n in range(3)],
        tool_ids=[t.id for t in tools],
    )
    walked_tools = [t.id for t in itertools.islice(client.agents.tools.list(agent.id, limit=2), 50)]
    assert walked_tools == [t.id for t in tools]
    walked_blocks = [b.label for b in itertools.islice(client.agents.blocks.list(agent.id, limit=2), 50)]
    assert walked_blocks == ["b0", "b1", "b2"]
    newest_first = client.agents.blocks.list(agent.id, order="desc", limit=1)
    assert [b.label for b in newest_first.items] == ["b2"]
    assert [b.label for b in client.agents.blocks.list(agent.id, before=newest_first.items[0].id).items] == ["b0", "b1"]
