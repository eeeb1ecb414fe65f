"""Background runs, resume, cancel, one active run per group, idempotent sends, the runs API."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.store.base import Store
from support import create_agent, create_group, parse_sse, payloads

MISSING_RUN = "run-00000000-0000-4000-8000-000000000000"


async def _group(client: httpx.AsyncClient, **scripted: Any) -> dict[str, Any]:
    agents = [await create_agent(client, n, **scripted) for n in ("Ada", "Brook")]
    return await create_group(client, [a["id"] for a in agents])


async def _wait_status(client: httpx.AsyncClient, run_id: str, statuses: set[str]) -> dict[str, Any]:
    for _ in range(500):
        run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
        if run["status"] in statuses:
            return run
        await asyncio.sleep(0.01)
    raise AssertionError(f"run {run_id} never reached {statuses}")


@pytest.mark.both_stores
async def test_async_send_returns_the_run_at_once_and_resume_replays_it(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=3)
    response = await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
    assert response.status_code == 200
    run = response.json()
    assert run["status"] in {"created", "running"} and run["background"] is True
    done = await _wait_status(client, run["id"], {"completed"})
    assert done["stop_reason"] == "end_turn"

    full = parse_sse((await client.post(f"/v1/runs/{run['id']}/stream", json={})).text)
    body = payloads(full)
    assert [e["message_type"] for e in body] == ["assistant_message"] * 2 + ["stop_reason", "usage_statistics"]
    for after in range(len(body) + 1):
        part = parse_sse((await client.post(f"/v1/runs/{run['id']}/stream", json={"starting_after": after})).text)
        assert [e.data for e in part] == [e.data for e in full[after:]], f"resume after {after}"
    header = parse_sse(
        (await client.post(f"/v1/runs/{run['id']}/stream", headers={"Last-Event-ID": "2"}, json={})).text
    )
    assert [e.data for e in header] == [e.data for e in full[2:]]


@pytest.mark.both_stores
async def test_background_stream_equals_its_resume(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=4)
    live = parse_sse(
        (
            await client.post(
                f"/v1/groups/{group['id']}/messages/stream",
                json={"input": "hi", "background": True, "stream_tokens": True},
            )
        ).text
    )
    run_id = payloads(live)[0]["run_id"]
    replay = parse_sse((await client.post(f"/v1/runs/{run_id}/stream", json={"batch_size": 3})).text)
    assert [(e.id, e.data) for e in replay] == [(e.id, e.data) for e in live]


@pytest.mark.both_stores
async def test_resume_errors(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    group = await _group(client, tokens=1)
    foreground = payloads(
        parse_sse((await client.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "x"})).text)
    )
    not_background = await client.post(f"/v1/runs/{foreground[0]['run_id']}/stream", json={})
    assert not_background.status_code == 400
    assert "not created in background mode" in not_background.json()["detail"]
    assert (await client.post(f"/v1/runs/{MISSING_RUN}/stream", json={})).status_code == 404
    assert (await client.post("/v1/runs/run-1/stream", json={})).status_code == 422
    bad = await client.post(f"/v1/runs/{MISSING_RUN}/stream", json={"starting_after": -1})
    assert bad.status_code == 422

    run = (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "y"})).json()
    await _wait_status(client, run["id"], {"completed"})
    record = await store.get_run("default", run["id"])
    await store.update_run(record.model_copy(update={"expires_at": time.time() - 1}), expect_version=record.version)
    expired = await client.post(f"/v1/runs/{run['id']}/stream", json={})
    assert expired.status_code == 410


@pytest.mark.both_stores
async def test_cancel_a_background_run(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=400, delay_s=0.005)
    nothing = await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    assert nothing.status_code == 409
    assert nothing.json()["detail"] == f"CONFLICT: No active runs to cancel for group {group['id']}"

    run = (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "go"})).json()
    await _wait_status(client, run["id"], {"running"})
    cancelled = await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    assert cancelled.status_code == 200
    assert cancelled.json() == {run["id"]: "cancelled"}
    final = await _wait_status(client, run["id"], {"cancelled"})
    assert final["stop_reason"] == "cancelled"
    events = payloads(parse_sse((await client.post(f"/v1/runs/{run['id']}/stream", json={})).text))
    assert events[-1] == {"message_type": "stop_reason", "stop_reason": "cancelled", "seq_id": len(events)}
    history = (await client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert [m["message_type"] for m in history] == ["user_message"], "no partial message is committed"


@pytest.mark.both_stores
async def test_cancel_by_agent_and_by_run_ids(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=400, delay_s=0.005)
    first_agent = group["agent_ids"][0]
    assert (await client.post(f"/v1/agents/{first_agent}/messages/cancel", json={})).status_code == 409
    run = (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "go"})).json()
    other = await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={"run_ids": [MISSING_RUN]})
    assert other.status_code == 409
    response = await client.post(f"/v1/agents/{first_agent}/messages/cancel", json={"run_ids": [run["id"]]})
    assert response.json() == {run["id"]: "cancelled"}
    await _wait_status(client, run["id"], {"cancelled"})


@pytest.mark.both_stores
async def test_one_active_run_per_group(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=200, delay_s=0.002)
    sends = [client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": f"msg {i}"}) for i in range(8)]
    responses = await asyncio.gather(*sends)
    ok = [r for r in responses if r.status_code == 200]
    busy = [r for r in responses if r.status_code == 409]
    assert len(ok) == 1 and len(busy) == 7
    winner = ok[0].json()["id"]
    assert {r.json()["run_id"] for r in busy} == {winner}
    assert all(winner in r.json()["detail"] for r in busy)
    reset = await client.patch(f"/v1/groups/{group['id']}/reset-messages")
    assert reset.status_code == 409
    await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    await _wait_status(client, winner, {"cancelled"})
    again = await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "after"})
    assert again.status_code == 200, "the group is free once its run ended"
    runs = (await client.get("/v1/runs", params={"group_id": group["id"]})).json()
    assert len(runs) == 2, "refused sends leave no run behind"


@pytest.mark.both_stores
async def test_idempotency_key_maps_to_one_run(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=3)
    url = f"/v1/groups/{group['id']}/messages"
    headers = {"Idempotency-Key": "key-1"}
    concurrent = await asyncio.gather(*[client.post(url, json={"input": "hi"}, headers=headers) for _ in range(6)])
    assert {r.status_code for r in concurrent} == {200}
    bodies = [r.json() for r in concurrent]
    assert all(b == bodies[0] for b in bodies), "every retry answers the same result"
    later = await client.post(url, json={"input": "hi"}, headers=headers)
    assert later.json() == bodies[0]
    runs = (await client.get("/v1/runs", params={"group_id": group["id"]})).json()
    assert len(runs) == 1
    history = (await client.get(f"/v1/groups/{group['id']}/messages")).json()
    assert len(history) == 3, "one user message and two answers, once"
    different = await client.post(url, json={"input": "something else"}, headers=headers)
    assert different.status_code == 422
    assert "Idempotency-Key" in different.json()["detail"]


@pytest.mark.both_stores
async def test_idempotent_streaming_retry_replays_from_the_start_or_last_event(
    api: tuple[httpx.AsyncClient, Store],
) -> None:
    client, _ = api
    group = await _group(client, tokens=3)
    url = f"/v1/groups/{group['id']}/messages/stream"
    body = {"input": "hi", "stream_tokens": True}
    first = parse_sse((await client.post(url, json=body, headers={"Idempotency-Key": "k"})).text)
    retry = parse_sse((await client.post(url, json=body, headers={"Idempotency-Key": "k"})).text)
    assert [e.data for e in retry] == [e.data for e in first]
    tail = parse_sse((await client.post(url, json=body, headers={"Idempotency-Key": "k", "Last-Event-ID": "4"})).text)
    assert [e.data for e in tail] == [e.data for e in first[4:]]


@pytest.mark.both_stores
async def test_runs_listing_filters(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    g1, g2 = await _group(client, tokens=1), await _group(client, tokens=1)
    r1 = (await client.post(f"/v1/groups/{g1['id']}/messages/async", json={"input": "a"})).json()
    await _wait_status(client, r1["id"], {"completed"})
    await client.post(f"/v1/groups/{g2['id']}/messages", json={"input": "b"})
    everything = (await client.get("/v1/runs/")).json()
    assert len(everything) == 2 and everything[0]["group_id"] == g2["id"], "newest first"
    assert [r["id"] for r in (await client.get("/v1/runs", params={"group_id": g1["id"]})).json()] == [r1["id"]]
    assert [r["id"] for r in (await client.get("/v1/runs", params={"background": "true"})).json()] == [r1["id"]]
    assert (await client.get("/v1/runs", params={"active": "true"})).json() == []
    assert len((await client.get("/v1/runs", params={"active": "false"})).json()) == 2
    both = (await client.get("/v1/runs", params={"statuses": "completed,failed"})).json()
    assert len(both) == 2
    assert (await client.get("/v1/runs", params=[("statuses", "failed"), ("statuses", "cancelled")])).json() == []
    agent = g1["agent_ids"][0]
    assert [r["id"] for r in (await client.get("/v1/runs", params={"agent_id": agent})).json()] == [r1["id"]]
    steps = (await client.get(f"/v1/runs/{r1['id']}/steps")).json()
    assert [s["agent_id"] for s in steps] == g1["agent_ids"]
    assert all(s["status"] == "success" and s["completion_tokens"] == 1 for s in steps)


@pytest.mark.both_stores
async def test_delete_run(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, _ = api
    group = await _group(client, tokens=300, delay_s=0.005)
    run = (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "a"})).json()
    busy = await client.delete(f"/v1/runs/{run['id']}")
    assert busy.status_code == 409
    await client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    await _wait_status(client, run["id"], {"cancelled"})
    assert (await client.delete(f"/v1/runs/{run['id']}")).status_code == 200
    assert (await client.get(f"/v1/runs/{run['id']}")).status_code == 404
    assert (await client.post(f"/v1/runs/{run['id']}/stream", json={})).status_code == 404


async def _orphan(store: Store, group: dict[str, Any]) -> str:
    """A run a dead server left `running`, its lease long expired and its log empty."""
    from chorus.ids import new_id
    from chorus.store.records import RunRecord

    run = RunRecord(
        tenant_id="default",
        id=new_id("run"),
        created_at="2026-11-24T06:33:05.000000+00:00",
        agent_id=group["agent_ids"][0],
        group_id=group["id"],
        status="running",
        background=True,
        lease_owner="worker-dead",
        lease_expires_at=1.0,
        inputs=[{"role": "user", "content": "are you there?"}],
        options={"stream_tokens": False, "max_steps": 50, "include_return_message_types": None},
    )
    await store.put_run(run)
    return run.id


@pytest.mark.both_stores
@pytest.mark.parametrize("delete_group", [False, True])
async def test_server_start_recovers_orphaned_runs(make_app: Callable[..., FastAPI], delete_group: bool) -> None:
    first = make_app()
    async with first.router.lifespan_context(first):
        transport = httpx.ASGITransport(app=first)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            group = await _group(client, tokens=2)
            run_id = await _orphan(first.state.services.store, group)
            if delete_group:
                await client.delete(f"/v1/groups/{group['id']}")
    second = make_app()
    async with second.router.lifespan_context(second):
        transport = httpx.ASGITransport(app=second)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            final = await _wait_status(client, run_id, {"completed", "failed"})
            events = payloads(parse_sse((await client.post(f"/v1/runs/{run_id}/stream", json={})).text))
    if delete_group:
        assert final["status"] == "failed" and final["stop_reason"] == "error"
        assert events[-1]["message_type"] == "error_message"
        assert "cannot continue" in events[-1]["message"]
    else:
        assert final["status"] == "completed" and final["stop_reason"] == "end_turn"
        assert [e.get("name") for e in events if e["message_type"] == "assistant_message"] == ["Ada", "Brook"]
