"""Double-texting (`multitask_strategy`): a send to a busy group waits, interrupts or rolls back.

A gate model holds every turn whose input says "hold" until the test opens it, and counts the
turns running at once: the group never runs two (one active run per group), whatever the
strategies and however the sends race. Runs and history are read back over HTTP.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import httpx
import pytest
from fastapi import FastAPI

from chorus.store.base import Store
from support import create_agent, create_group, parse_sse, payloads
from support.gate import Gate

T = TypeVar("T")
SETTLE_S = 30.0
"""Generous bound for something the test waits on (never a timing assertion)."""


@asynccontextmanager
async def serving(app: FastAPI, gate: Gate) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan, and a client of it; the gate opens at the end so no run hangs."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            try:
                yield client
            finally:
                gate.release()


@pytest.fixture
async def gated(make_app: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, Store, Gate, str]]:
    gate = Gate()
    app = make_app(resolver=gate)
    async with serving(app, gate) as client:
        agent = await create_agent(client, "Ada")
        group = await create_group(client, [agent["id"]])
        yield client, app.state.services.store, gate, group["id"]


async def send_async(
    client: httpx.AsyncClient, group_id: str, text: str, strategy: str | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"input": text}
    if strategy is not None:
        body["multitask_strategy"] = strategy
    response = await client.post(f"/v1/groups/{group_id}/messages/async", json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def until(read: Callable[[], Awaitable[T]], done: Callable[[T], bool]) -> T:
    """Poll `read` until `done` holds for what it returns, within `SETTLE_S`."""
    async with asyncio.timeout(SETTLE_S):
        value = await read()
        while not done(value):
            await asyncio.sleep(0.02)
            value = await read()
        return value


async def settled(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
        return run

    return await until(read, lambda run: run["status"] in ("completed", "failed", "cancelled"))


async def history(client: httpx.AsyncClient, group_id: str) -> list[tuple[str, str]]:
    listed = (await client.get(f"/v1/groups/{group_id}/messages", params={"order": "asc", "limit": 1000})).json()
    return [(m["message_type"], m["content"] if isinstance(m["content"], str) else str(m["content"])) for m in listed]


async def busy(gate: Gate, client: httpx.AsyncClient, group_id: str, text: str) -> dict[str, Any]:
    """Start a run the gate holds (its input says "hold"): the group is busy until the gate opens."""
    run = await send_async(client, group_id, text)
    async with asyncio.timeout(SETTLE_S):
        await gate.holding.wait()
    return run


@pytest.mark.both_stores
async def test_enqueued_sends_start_in_arrival_order_after_the_active_run(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, _, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 1")
    queued = [await send_async(client, group_id, f"then {i}", "enqueue") for i in (2, 3)]
    assert [r["status"] for r in queued] == ["created", "created"]
    refused = await client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "plain"})
    assert refused.status_code == 409 and refused.json()["run_id"] == first["id"]  # reject stays the default
    gate.release()
    ended = [await settled(client, r["id"]) for r in (first, *queued)]
    assert [r["status"] for r in ended] == ["completed"] * 3
    assert await history(client, group_id) == [
        ("user_message", "hold 1"),
        ("assistant_message", "re: hold 1"),
        ("user_message", "then 2"),
        ("assistant_message", "re: then 2"),
        ("user_message", "then 3"),
        ("assistant_message", "re: then 3"),
    ]
    assert gate.most_at_once == 1


@pytest.mark.both_stores
async def test_a_streaming_enqueue_names_its_run_first_then_streams_it_when_it_starts(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, store, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 1")
    body = {"input": "then 2", "multitask_strategy": "enqueue"}
    sending = asyncio.ensure_future(client.post(f"/v1/groups/{group_id}/messages/stream", json=body))
    await until(lambda: store.get_group_queue("default", group_id), lambda line: bool(line.waiting))
    assert not sending.done()  # the stream waits with its run
    gate.release()
    response = await sending
    assert response.status_code == 200, response.text
    events = payloads(parse_sse(response.text))
    announced = events[0]
    assert announced["message_type"] == "ping" and announced["status"] == "created"
    run = await settled(client, announced["run_id"])
    assert run["status"] == "completed" and (await settled(client, first["id"]))["status"] == "completed"
    said = [e["content"] for e in events if e["message_type"] == "assistant_message"]
    assert said == ["re: then 2"] and all(e["run_id"] == run["id"] for e in events[1:] if "run_id" in e)
    assert events[-2]["message_type"] == "stop_reason" or events[-1]["message_type"] == "usage_statistics"


@pytest.mark.both_stores
async def test_a_queued_run_can_be_resumed_and_cancelled_and_leaves_the_line(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, store, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 1")
    second = await send_async(client, group_id, "then 2", "enqueue")
    third = await send_async(client, group_id, "then 3", "enqueue")
    assert (await store.get_group_queue("default", group_id)).waiting == [second["id"], third["id"]]
    resumed = asyncio.ensure_future(client.post(f"/v1/runs/{third['id']}/stream", json={"include_pings": False}))
    cancelled = await client.post(f"/v1/groups/{group_id}/messages/cancel", json={"run_ids": [second["id"]]})
    assert cancelled.json() == {second["id"]: "cancelled"}
    assert (await settled(client, second["id"]))["stop_reason"] == "cancelled"
    assert (await store.get_group_queue("default", group_id)).waiting == [third["id"]]
    gate.release()
    assert (await settled(client, third["id"]))["status"] == "completed"
    events = payloads(parse_sse((await resumed).text))
    assert [e["content"] for e in events if e["message_type"] == "assistant_message"] == ["re: then 3"]
    assert (await settled(client, first["id"]))["status"] == "completed"
    assert "then 2" not in [text for _, text in await history(client, group_id)]
    assert (await client.get(f"/v1/runs/{second['id']}/messages")).json() == []


@pytest.mark.both_stores
async def test_interrupt_cancels_the_active_run_and_starts_over_the_history_as_it_stands(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, _, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 1")
    body = {"input": "instead", "multitask_strategy": "interrupt"}
    response = await client.post(f"/v1/groups/{group_id}/messages", json=body)
    assert response.status_code == 200, response.text
    assert [m["content"] for m in response.json()["messages"] if m["message_type"] == "assistant_message"] == [
        "re: instead"
    ]
    ended = await settled(client, first["id"])
    assert (ended["status"], ended["stop_reason"]) == ("cancelled", "cancelled")
    assert await history(client, group_id) == [
        ("user_message", "hold 1"),  # the interrupted run's committed input stays
        ("user_message", "instead"),
        ("assistant_message", "re: instead"),
    ]
    assert gate.seen[-1][-2:] == ["hold 1", "instead"]
    assert gate.most_at_once == 1


@pytest.mark.both_stores
async def test_rollback_takes_the_interrupted_runs_messages_out_of_history(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, _, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 1")
    second = await send_async(client, group_id, "instead", "rollback")
    ended = await settled(client, second["id"])
    assert ended["status"] == "completed"
    undone = await settled(client, first["id"])
    assert (undone["status"], undone["stop_reason"]) == ("cancelled", "cancelled")
    assert undone["metadata"]["rolled_back_by"] == second["id"]
    assert (await client.get(f"/v1/runs/{first['id']}/messages")).json() == []
    assert await history(client, group_id) == [("user_message", "instead"), ("assistant_message", "re: instead")]
    assert gate.seen[-1][-1:] == ["instead"] and "hold 1" not in gate.seen[-1]


@pytest.mark.both_stores
async def test_racing_double_texts_never_run_two_runs_of_a_group_at_once(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, store, gate, group_id = gated
    first = await busy(gate, client, group_id, "hold 0")
    strategies = ["enqueue", "interrupt", "enqueue", "rollback", "enqueue", "interrupt", "enqueue", "enqueue"]
    sent = await asyncio.gather(
        *(send_async(client, group_id, f"text {i}", s) for i, s in enumerate(strategies, start=1))
    )
    gate.release()
    ended = {r["id"]: await settled(client, r["id"]) for r in [first, *sent]}
    assert gate.most_at_once == 1
    enqueued = [r["id"] for r, s in zip(sent, strategies, strict=True) if s == "enqueue"]
    assert all(ended[i]["status"] == "completed" for i in enqueued)  # an interrupt cancels the active run only
    assert sum(1 for r in ended.values() if r["status"] == "completed") >= len(enqueued) + 1
    # history reads run after run, never interleaved
    listed = (await client.get(f"/v1/groups/{group_id}/messages", params={"order": "asc", "limit": 1000})).json()
    order = [m["run_id"] for m in listed]
    assert order == sorted(order, key=order.index)  # each run's messages side by side
    line = await store.get_group_queue("default", group_id)
    assert line.head is None


@pytest.mark.both_stores
async def test_an_idempotent_retry_of_an_enqueued_send_gets_the_same_run(
    gated: tuple[httpx.AsyncClient, Store, Gate, str],
) -> None:
    client, store, gate, group_id = gated
    await busy(gate, client, group_id, "hold 1")
    body = {"input": "then 2", "multitask_strategy": "enqueue"}
    headers = {"Idempotency-Key": "k-1"}
    once = (await client.post(f"/v1/groups/{group_id}/messages/async", json=body, headers=headers)).json()
    again = (await client.post(f"/v1/groups/{group_id}/messages/async", json=body, headers=headers)).json()
    assert once["id"] == again["id"]
    assert (await store.get_group_queue("default", group_id)).waiting == [once["id"]]
    other = await client.post(f"/v1/groups/{group_id}/messages/async", json={**body, "input": "x"}, headers=headers)
    assert other.status_code == 422  # the same key with another body
    gate.release()
    assert (await settled(client, once["id"]))["status"] == "completed"


async def test_a_full_line_and_a_tenant_at_its_limit_refuse_and_leave_nothing_behind(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("chorus.runs.queue.MAX_WAITING_RUNS", 1)
    gate = Gate()
    app = make_app(resolver=gate, settings={"max_active_runs_per_tenant": 3})
    async with serving(app, gate) as client:
        agent = await create_agent(client, "Ada")
        groups = [(await create_group(client, [agent["id"]]))["id"] for _ in range(2)]
        first = await busy(gate, client, groups[0], "hold 1")
        waiting = await send_async(client, groups[0], "then 2", "enqueue")
        full = await client.post(
            f"/v1/groups/{groups[0]}/messages/async", json={"input": "3", "multitask_strategy": "enqueue"}
        )
        assert full.status_code == 409 and full.json()["run_id"] == waiting["id"]
        await send_async(client, groups[1], "hold 4")
        over = await client.post(
            f"/v1/groups/{groups[1]}/messages/async", json={"input": "5", "multitask_strategy": "enqueue"}
        )
        assert over.status_code == 429
        runs = (await client.get("/v1/runs", params={"limit": 100})).json()
        assert len(runs) == 3  # the refused sends left no record
        store: Store = app.state.services.store
        assert [(await store.get_group_queue("default", g)).waiting for g in groups] == [[waiting["id"]], []]
        gate.release()
        assert (await settled(client, waiting["id"]))["status"] == "completed"
        assert (await settled(client, first["id"]))["status"] == "completed"


@pytest.mark.both_stores
async def test_an_agent_talked_to_directly_takes_the_same_strategies(make_app: Callable[..., FastAPI]) -> None:
    gate = Gate()
    app = make_app(resolver=gate)
    async with serving(app, gate) as client:
        agent = await create_agent(client, "Ada")
        sends = f"/v1/agents/{agent['id']}/messages"
        first = (await client.post(f"{sends}/async", json={"input": "hold 1"})).json()
        async with asyncio.timeout(SETTLE_S):
            await gate.holding.wait()
        queued = await client.post(f"{sends}/async", json={"input": "then 2", "multitask_strategy": "enqueue"})
        assert queued.json()["status"] == "created"
        undo = await client.post(f"{sends}", json={"input": "instead", "multitask_strategy": "rollback"})
        assert undo.status_code == 200, undo.text
        undone = await settled(client, first["id"])
        assert undone["status"] == "cancelled" and "rolled_back_by" in undone["metadata"]
        assert (await settled(client, queued.json()["id"]))["status"] == "completed"
        listed = (await client.get(sends, params={"order": "asc"})).json()
        said = [m["content"] for m in listed if m["message_type"] in ("user_message", "assistant_message")]
        assert said == ["instead", "re: instead", "then 2", "re: then 2"]  # the interrupter went first
        assert gate.most_at_once == 1
