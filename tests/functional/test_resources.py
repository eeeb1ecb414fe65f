"""Agents, groups, health: CRUD and every error path, through the ASGI app."""

from __future__ import annotations

import httpx
import pytest

from support import create_agent, create_group, payloads, stream

MISSING_AGENT = "agent-00000000-0000-4000-8000-000000000000"
MISSING_GROUP = "group-00000000-0000-4000-8000-000000000000"


async def test_health(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/health")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["version"]


@pytest.mark.both_stores
async def test_agent_crud_round_trip(client: httpx.AsyncClient) -> None:
    agent = await create_agent(client, "Ada")
    assert agent["id"].startswith("agent-") and len(agent["id"]) == 42
    assert agent["name"] == "Ada"
    assert agent["model"] == "scripted/default"
    assert agent["llm_config"]["handle"] == "scripted/default"
    assert (await client.get(f"/v1/agents/{agent['id']}")).json() == agent

    patched = await client.patch(f"/v1/agents/{agent['id']}", json={"name": "Ada L.", "tags": ["x"]})
    assert patched.status_code == 200
    assert patched.json()["name"] == "Ada L." and patched.json()["tags"] == ["x"]
    assert patched.json()["system"] == agent["system"]

    assert (await client.delete(f"/v1/agents/{agent['id']}")).status_code == 200
    assert (await client.get(f"/v1/agents/{agent['id']}")).status_code == 404


async def test_agent_defaults_and_trailing_slash(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/agents/", json={})
    assert response.status_code == 200, "the Letta SDKs call POST /v1/agents/ with a slash"
    agent = response.json()
    assert agent["model"] == "scripted/default"
    assert agent["name"] and agent["system"]
    listed = await client.get("/v1/agents/")
    assert listed.status_code == 200
    assert [a["id"] for a in listed.json()] == [agent["id"]]


async def test_every_collection_path_answers_with_a_trailing_slash_as_without(client: httpx.AsyncClient) -> None:
    """`<collection>/` is routed as `<collection>` (chorus.api.slashes), for every method, 405s included."""
    agent = await create_agent(client, "Slash")
    collections = [
        "/v1/agents", "/v1/blocks", "/v1/groups", "/v1/tools", "/v1/runs", "/v1/health",
        f"/v1/agents/{agent['id']}/core-memory/blocks", f"/v1/agents/{agent['id']}/tools",
    ]  # fmt: skip
    for path in collections:
        for method in ("GET", "PUT", "PATCH", "DELETE"):
            plain, slashed = await client.request(method, path), await client.request(method, f"{path}/")
            assert slashed.status_code == plain.status_code, (method, path)
            assert slashed.headers.get("allow") == plain.headers.get("allow"), (method, path)
            assert slashed.json() == plain.json(), (method, path)
    assert (await client.post("/v1/blocks/", json={"label": "notes", "value": "x"})).status_code == 200
    assert (await client.get(f"/v1/agents/{agent['id']}/")).status_code == 404, "only collection paths are aliased"
    assert (await client.get("/v1/agents//")).status_code == 404


@pytest.mark.both_stores
async def test_agent_list_pagination(client: httpx.AsyncClient) -> None:
    ids = [(await create_agent(client, f"a{i}"))["id"] for i in range(5)]
    first = (await client.get("/v1/agents", params={"limit": 2, "order": "asc"})).json()
    assert [a["id"] for a in first] == ids[:2]
    rest = (await client.get("/v1/agents", params={"after": ids[1], "order": "asc"})).json()
    assert [a["id"] for a in rest] == ids[2:]
    newest = (await client.get("/v1/agents", params={"limit": 1})).json()
    assert [a["id"] for a in newest] == [ids[-1]]


@pytest.mark.parametrize(
    ("body", "status", "needle"),
    [
        ({"model": "nosuch/model"}, 400, "not available"),
        ({"model": "no-slash"}, 400, "provider/model"),
        ({"metadata": {"scripted": {"tokens": 0}}}, 400, "tokens"),
        ({"metadata": {"scripted": {"error": "boom"}}}, 400, "error"),
        ({"name": ""}, 422, "name"),
        ({"tags": "not-a-list"}, 422, "tags"),
    ],
)
async def test_agent_create_rejects_bad_values(
    client: httpx.AsyncClient, body: dict[str, object], status: int, needle: str
) -> None:
    response = await client.post("/v1/agents", json=body)
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


async def test_agent_update_rejects_unrunnable_model(client: httpx.AsyncClient) -> None:
    agent = await create_agent(client, "Ada")
    response = await client.patch(f"/v1/agents/{agent['id']}", json={"model": "nosuch/x"})
    assert response.status_code == 400
    assert (await client.get(f"/v1/agents/{agent['id']}")).json()["model"] == "scripted/default"


@pytest.mark.parametrize("method", ["get", "delete"])
async def test_malformed_and_unknown_ids(client: httpx.AsyncClient, method: str) -> None:
    bad = await client.request(method.upper(), "/v1/groups/group-123")
    assert bad.status_code == 422
    assert bad.json()["examples"] == ["group-123e4567-e89b-42d3-8456-426614174000"]
    assert "group_id" in bad.json()["detail"]
    missing = await client.request(method.upper(), f"/v1/groups/{MISSING_GROUP}")
    assert missing.status_code == 404
    assert missing.json() == {"detail": f"Group not found: {MISSING_GROUP}"}
    agent_missing = await client.request(method.upper(), f"/v1/agents/{MISSING_AGENT}")
    assert agent_missing.status_code == 404


@pytest.mark.both_stores
async def test_group_crud_round_robin_default(client: httpx.AsyncClient) -> None:
    a, b = await create_agent(client, "A"), await create_agent(client, "B")
    group = await create_group(client, [a["id"], b["id"]])
    assert group["manager_type"] == "round_robin"
    assert group["agent_ids"] == [a["id"], b["id"]]
    assert group["max_turns"] is None
    assert (await client.get(f"/v1/groups/{group['id']}")).json() == group
    assert [g["id"] for g in (await client.get("/v1/groups/")).json()] == [group["id"]]
    patched = await client.patch(
        f"/v1/groups/{group['id']}", json={"manager_config": {"manager_type": "round_robin", "max_turns": 4}}
    )
    assert patched.status_code == 200 and patched.json()["max_turns"] == 4
    assert (await client.delete(f"/v1/groups/{group['id']}")).status_code == 200
    assert (await client.get(f"/v1/groups/{group['id']}")).status_code == 404


@pytest.mark.parametrize(
    "config",
    [
        {"manager_type": "supervisor", "manager_agent_id": "{m}"},
        {"manager_type": "dynamic", "manager_agent_id": "{m}", "termination_token": "STOP", "max_turns": 3},
        {"manager_type": "sleeptime", "manager_agent_id": "{m}", "sleeptime_agent_frequency": 2},
        {
            "manager_type": "voice_sleeptime",
            "manager_agent_id": "{m}",
            "max_message_buffer_length": 10,
            "min_message_buffer_length": 5,
        },
    ],
)
async def test_every_manager_type_validates_and_runs(client: httpx.AsyncClient, config: dict[str, object]) -> None:
    manager, worker = await create_agent(client, "M"), await create_agent(client, "W")
    config = {k: (manager["id"] if v == "{m}" else v) for k, v in config.items()}
    group = await create_group(client, [worker["id"]], config)
    assert group["manager_type"] == config["manager_type"]
    assert group["manager_agent_id"] == manager["id"]
    events = payloads(await stream(client, group["id"], {"input": "hi"}))
    assert events[-2]["message_type"] == "stop_reason" and events[-2]["stop_reason"] in ("end_turn", "max_steps")
    assert {e.get("sender_id") for e in events if e["message_type"] == "assistant_message"} <= {
        manager["id"],
        worker["id"],
    }


@pytest.mark.parametrize(
    ("config", "status", "needle"),
    [
        ({"manager_type": "swarm"}, 422, "manager_config"),
        ({"manager_type": "supervisor"}, 422, "manager_agent_id"),
        ({"manager_type": "supervisor", "manager_agent_id": "agent-1"}, 422, "manager_agent_id"),
        ({"manager_type": "supervisor", "manager_agent_id": MISSING_AGENT}, 404, "Agent not found"),
        ({"manager_type": "round_robin", "max_turns": 0}, 422, "max_turns"),
        (
            {"manager_type": "voice_sleeptime", "manager_agent_id": "{m}", "min_message_buffer_length": 4},
            400,
            "greater than 4",
        ),
        (
            {
                "manager_type": "voice_sleeptime",
                "manager_agent_id": "{m}",
                "min_message_buffer_length": 8,
                "max_message_buffer_length": 8,
            },
            400,
            "max_message_buffer_length",
        ),
        ({"manager_type": "voice_sleeptime", "manager_agent_id": "{m}", "max_message_buffer_length": 12}, 400, "(15)"),
        ({"manager_type": "supervisor", "manager_agent_id": "{m}"}, 400, "besides its manager"),
        ({"manager_type": "sleeptime", "manager_agent_id": "{m}"}, 400, "sleeptime agents"),
    ],
)
async def test_group_config_errors(
    client: httpx.AsyncClient, config: dict[str, object], status: int, needle: str
) -> None:
    agent = await create_agent(client, "A")
    config = {k: (agent["id"] if v == "{m}" else v) for k, v in config.items()}
    response = await client.post("/v1/groups", json={"agent_ids": [agent["id"]], "manager_config": config})
    assert response.status_code == status, response.text
    assert needle in response.json()["detail"]


async def test_group_membership_errors(client: httpx.AsyncClient) -> None:
    a = await create_agent(client, "Same")
    b = await create_agent(client, "Same")
    empty = await client.post("/v1/groups", json={"agent_ids": []})
    assert empty.status_code == 400 and "at least one agent" in empty.json()["detail"]
    twice = await client.post("/v1/groups", json={"agent_ids": [a["id"], a["id"]]})
    assert twice.status_code == 400
    unknown = await client.post("/v1/groups", json={"agent_ids": [a["id"], MISSING_AGENT]})
    assert unknown.status_code == 404
    dynamic = await client.post(
        "/v1/groups",
        json={
            "agent_ids": [a["id"], b["id"]],
            "manager_config": {"manager_type": "dynamic", "manager_agent_id": a["id"]},
        },
    )
    assert dynamic.status_code == 400 and "distinct names" in dynamic.json()["detail"]


async def test_group_manager_type_cannot_change(client: httpx.AsyncClient) -> None:
    a = await create_agent(client, "A")
    group = await create_group(client, [a["id"]])
    response = await client.patch(
        f"/v1/groups/{group['id']}",
        json={"manager_config": {"manager_type": "supervisor", "manager_agent_id": a["id"]}},
    )
    assert response.status_code == 400
    assert "cannot change" in response.json()["detail"]
    assert (await client.get(f"/v1/groups/{group['id']}")).json()["manager_type"] == "round_robin"
