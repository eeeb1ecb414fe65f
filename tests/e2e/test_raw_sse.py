"""The stream on the wire, read with raw httpx from real uvicorn: framing, incremental delivery, pings, disconnects."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from chorus.devserver import Server
from support import parse_sse

pytestmark = pytest.mark.e2e


def group_of(client: httpx.Client, *scripts: dict[str, Any]) -> str:
    ids = [
        client.post("/v1/agents", json={"name": f"A{i}", "metadata": {"scripted": s}}).json()["id"]
        for i, s in enumerate(scripts)
    ]
    group_id: str = client.post("/v1/groups", json={"agent_ids": ids}).json()["id"]
    return group_id


def test_framing_headers_and_incremental_delivery(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        # 40 tokens over 1.2 s: live readers get what is stored, written at once or every 50 ms
        group = group_of(client, {"tokens": 20, "delay_s": 0.03}, {"tokens": 20, "delay_s": 0.03})
        reads = 0
        body = b""
        with client.stream(
            "POST", f"/v1/groups/{group}/messages/stream", json={"input": "hi", "stream_tokens": True}
        ) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            assert "no-cache" in response.headers["cache-control"]
            for chunk in response.iter_raw():
                reads += 1
                body += chunk
        assert reads > 10, "events arrive as they are produced, not in one buffered body"
    events = parse_sse(body.decode())
    assert events[-1].data == "[DONE]" and events[-1].id is None
    for event in events[:-1]:
        assert event.id == str(json.loads(event.data)["seq_id"])
    assert [int(e.id or 0) for e in events[:-1]] == list(range(1, len(events)))


def test_pings_only_when_asked(ping_server: Server) -> None:
    with httpx.Client(base_url=ping_server.url, timeout=30) as client:
        group = group_of(client, {"tokens": 3, "delay_s": 0.2})
        with_pings = parse_sse(
            client.post(f"/v1/groups/{group}/messages/stream", json={"input": "hi", "stream_tokens": True}).text
        )
        pings = [e for e in with_pings if e.data == '{"message_type":"ping"}']
        assert pings and all(p.id is None for p in pings)
        without = parse_sse(
            client.post(
                f"/v1/groups/{group}/messages/stream",
                json={"input": "hi", "stream_tokens": True, "include_pings": False},
            ).text
        )
        assert not [e for e in without if e.data == '{"message_type":"ping"}']
        assert [int(e.id) for e in without if e.id] == list(range(1, len(without)))


def test_foreground_client_disconnect_cancels_the_run(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        group = group_of(client, {"tokens": 400, "delay_s": 0.01}, {"tokens": 5})
        run_id = None
        with client.stream(
            "POST", f"/v1/groups/{group}/messages/stream", json={"input": "hi", "stream_tokens": True}
        ) as response:
            for line in response.iter_lines():
                if line.startswith("data: {"):
                    run_id = json.loads(line[6:])["run_id"]
                    break
        assert run_id is not None
        run: dict[str, Any] = {}
        for _ in range(500):
            run = client.get(f"/v1/runs/{run_id}").json()
            if run["status"] not in {"created", "running"}:
                break
            time.sleep(0.02)
        assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
        history = client.get(f"/v1/groups/{group}/messages", params={"order": "asc"}).json()
        assert [m["message_type"] for m in history] == ["user_message"], "no partial answer in history"


def test_background_run_survives_its_client(server: Server) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        group = group_of(client, {"tokens": 50, "delay_s": 0.005})
        with client.stream(
            "POST",
            f"/v1/groups/{group}/messages/stream",
            json={"input": "hi", "stream_tokens": True, "background": True},
        ) as response:
            first = next(line for line in response.iter_lines() if line.startswith("data: {"))
        run_id = json.loads(first[6:])["run_id"]
        replay = parse_sse(client.post(f"/v1/runs/{run_id}/stream", json={"starting_after": 0}).text)
        assert replay[-1].data == "[DONE]"
        assert json.loads(replay[-3].data)["stop_reason"] == "end_turn"
        assert client.get(f"/v1/runs/{run_id}").json()["status"] == "completed"
