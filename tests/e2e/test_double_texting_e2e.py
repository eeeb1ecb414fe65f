"""Double-texting over real HTTP: `letta-client` passes `multitask_strategy` as an extra body field
(strict validation of every event it reads), raw httpx reads the frames of a waiting stream."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import pytest
from letta_client import Letta

from chorus.devserver import Server
from support import parse_sse

pytestmark = pytest.mark.e2e
SETTLE_S = 60.0


def slow_group(http: httpx.Client, tokens: int = 40) -> str:
    """One agent answering `tokens` tokens 50 ms apart: a run that is still active when the next send comes."""
    script = {"tokens": tokens, "delay_s": 0.05}
    agent = http.post("/v1/agents", json={"name": "Ada", "metadata": {"scripted": script}}).json()
    group_id: str = http.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()["id"]
    return group_id


def start(http: httpx.Client, group_id: str, text: str, strategy: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": text}
    if strategy is not None:
        body["multitask_strategy"] = strategy
    response = http.post(f"/v1/groups/{group_id}/messages/async", json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


def settled(http: httpx.Client, run_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        run: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
        if run["status"] in ("completed", "failed", "cancelled"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never ended")


def inputs(http: httpx.Client, group_id: str) -> list[str]:
    listed = http.get(f"/v1/groups/{group_id}/messages", params={"order": "asc", "limit": 1000}).json()
    return [m["content"] for m in listed if m["message_type"] == "user_message"]


def test_letta_client_enqueues_and_interrupts_with_an_extra_body_field(server: Server) -> None:
    client = Letta(base_url=server.url, api_key="local", max_retries=0, _strict_response_validation=True)
    with httpx.Client(base_url=server.url, timeout=SETTLE_S) as http:
        group_id = slow_group(http)
        first = start(http, group_id, "one")
        events = list(
            client.groups.messages.stream(group_id, input="two", extra_body={"multitask_strategy": "enqueue"})
        )
        announced = events[0]
        assert announced.message_type == "ping"
        run_id = announced.model_extra["run_id"]  # type: ignore[index]
        assert [e.message_type for e in events[-2:]] == ["stop_reason", "usage_statistics"]
        assert {e.run_id for e in events if e.message_type == "assistant_message"} == {run_id}
        assert settled(http, first["id"])["status"] == "completed"
        assert client.runs.retrieve(run_id).status == "completed"
        third = start(http, group_id, "three")
        reply = client.groups.messages.create(group_id, input="four", extra_body={"multitask_strategy": "interrupt"})
        assert reply.stop_reason.stop_reason == "end_turn"
        interrupted = client.runs.retrieve(third["id"])
        assert (interrupted.status, interrupted.stop_reason) == ("cancelled", "cancelled")
        assert inputs(http, group_id) == ["one", "two", "three", "four"]


def test_a_waiting_stream_on_the_wire_names_its_run_pings_then_streams(ping_server: Server) -> None:
    with httpx.Client(base_url=ping_server.url, timeout=SETTLE_S) as http:
        group_id = slow_group(http, tokens=20)
        first = start(http, group_id, "one")
        body = {"input": "two", "multitask_strategy": "enqueue", "stream_tokens": True}
        text = http.post(f"/v1/groups/{group_id}/messages/stream", json=body).text
    frames = parse_sse(text)
    head = json.loads(frames[0].data)
    assert frames[0].id is None and head["message_type"] == "ping" and head["status"] == "created"
    first_event = next(i for i, f in enumerate(frames) if f.id is not None)
    assert first_event > 1 and all(f.data == '{"message_type":"ping"}' for f in frames[1:first_event])
    numbered = [f for f in frames if f.id is not None]
    assert [int(f.id or 0) for f in numbered] == list(range(1, len(numbered) + 1))
    assert all(json.loads(f.data)["run_id"] == head["run_id"] for f in numbered if "run_id" in json.loads(f.data))
    assert frames[-1].data == "[DONE]"
    with httpx.Client(base_url=ping_server.url, timeout=SETTLE_S) as http:
        assert settled(http, first["id"])["status"] == "completed"
        assert settled(http, head["run_id"])["status"] == "completed"


def test_a_waiting_foreground_sender_that_hangs_up_takes_its_run_out_of_the_line(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=SETTLE_S) as http:
        group_id = slow_group(http, tokens=60)
        first = start(http, group_id, "one")
        announced: dict[str, Any] = {}
        got = threading.Event()
        with http.stream(
            "POST", f"/v1/groups/{group_id}/messages/stream", json={"input": "two", "multitask_strategy": "enqueue"}
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: "):
                    announced = json.loads(line.removeprefix("data: "))
                    got.set()
                    break
        assert got.is_set() and announced["status"] == "created"
        assert settled(http, announced["run_id"])["stop_reason"] == "cancelled"
        assert settled(http, first["id"])["status"] == "completed"
        assert inputs(http, group_id) == ["one"]
        rolled = start(http, group_id, "three", "rollback")
        assert settled(http, rolled["id"])["status"] == "completed"
