"""Another tenant cannot talk to, read, reset, cancel or reach through its hidden group an agent it does not own.

A real uvicorn server on loopback with two API-key tenants: alice owns an agent and
talks to it; every agent-message route answers bob 404 for it (never 403: bob learns
nothing of what exists), her agent's hidden group is as unknown to bob as to her, and
neither an `Idempotency-Key` nor a `run_ids` list reaches across tenants.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from chorus.devserver import Server, running_server
from chorus.runs.solo import solo_group_id

pytestmark = pytest.mark.e2e

ALICE, BOB = "ka-alice-key", "kb-bob-key"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server({"CHORUS_API_KEYS": f"{ALICE}=alice,{BOB}=bob"}) as s:
        yield s


@pytest.fixture
def clients(server: Server) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    def client(key: str) -> httpx.Client:
        return httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    with client(ALICE) as alice, client(BOB) as bob:
        yield alice, bob


def make_agent(client: httpx.Client, name: str, **script: Any) -> str:
    body = {"name": name, "model": "scripted/default", "metadata": {"scripted": script or {"tokens": 2}}}
    response = client.post("/v1/agents", json=body)
    assert response.status_code == 200, response.text
    agent_id: str = response.json()["id"]
    return agent_id


def test_every_agent_message_route_is_404_to_another_tenant(clients: tuple[httpx.Client, httpx.Client]) -> None:
    alice, bob = clients
    agent_id = make_agent(alice, "Ada")
    sent = alice.post(f"/v1/agents/{agent_id}/messages", json={"input": "my secret is zebra-moonlight"})
    assert sent.status_code == 200, sent.text
    run_id = sent.json()["messages"][0]["run_id"]
    attempts = [
        ("POST", "/messages", {"input": "what is her secret?"}),
        ("POST", "/messages/stream", {"input": "what is her secret?"}),
        ("POST", "/messages/async", {"input": "what is her secret?"}),
        ("POST", "/messages/cancel", {}),
        ("GET", "/messages", None),
        ("PATCH", "/reset-messages", {}),
    ]
    for method, suffix, body in attempts:
        response = bob.request(method, f"/v1/agents/{agent_id}{suffix}", json=body)
        assert response.status_code == 404, (method, suffix, response.text)
        assert "zebra-moonlight" not in response.text
    hidden = solo_group_id(agent_id)
    for method, suffix in [("GET", ""), ("GET", "/messages"), ("POST", "/messages/stream")]:
        body = {"input": "hi"} if method == "POST" else None
        assert bob.request(method, f"/v1/groups/{hidden}{suffix}", json=body).status_code == 404
    assert bob.get(f"/v1/runs/{run_id}").status_code == 404
    assert bob.get("/v1/runs", params={"agent_id": agent_id}).json() == []
    mine = make_agent(bob, "Bo")
    assert bob.get(f"/v1/agents/{mine}/messages", params={"group_id": hidden}).status_code == 404
    history = alice.get(f"/v1/agents/{agent_id}/messages").json()
    assert [m["message_type"] for m in history] == ["assistant_message", "user_message"], "bob changed nothing"


def test_keys_and_run_ids_do_not_cross_tenants(clients: tuple[httpx.Client, httpx.Client]) -> None:
    alice, bob = clients
    hers, his = make_agent(alice, "Slow", tokens=2, delay_s=60), make_agent(bob, "Bo")
    key = {"Idempotency-Key": "the-same-key"}
    started = alice.post(f"/v1/agents/{hers}/messages/async", json={"input": "hi"}, headers=key)
    assert started.status_code == 200
    run_id = started.json()["id"]
    own = bob.post(f"/v1/agents/{his}/messages/async", json={"input": "hi"}, headers=key)
    assert own.status_code == 200 and own.json()["id"] != run_id, "bob's key is his own"
    for _ in range(1000):
        if bob.get(f"/v1/runs/{own.json()['id']}").json()["status"] == "completed":
            break
        time.sleep(0.01)
    refused = bob.post(f"/v1/agents/{his}/messages/cancel", json={"run_ids": [run_id]})
    assert refused.status_code == 409, "her run is not among his agent's"
    assert alice.get(f"/v1/runs/{run_id}").json()["status"] == "running"
    assert alice.post(f"/v1/agents/{hers}/messages/cancel", json={"run_ids": [run_id]}).json() == {run_id: "cancelled"}
