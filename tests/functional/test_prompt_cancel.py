"""Cancel is prompt whatever the run waits on: a model, a tool's process, a fan-out worker, an approved tool.

Each case makes the run wait on something that would take minutes, cancels
it, and checks the behaviour: the run ends `cancelled` (`stop_reason:
cancelled`, `[DONE]`) long before the wait could have ended by itself, the
interrupted step wrote nothing to history, a tool's work after its sleep
never happened (its process was killed), and the group takes the next
message. Waits are bounded generously (`SETTLE_S`, far below the minutes the
work would take), never timed.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.store.base import Store
from support import create_agent, create_group, payloads, stream

SETTLE_S = 30.0
"""Generous bound for a cancelled run to end; each waited-on thing takes far longer (`LONG_S`)."""
LONG_S = 60
"""The longest model wait the scripted model allows (`chorus.limits`); a tool sleeps five times longer."""
BROADCAST = "send_message_to_all_agents_in_group"


def slow_tool(path: str) -> str:
    """Leaves a mark, sleeps for minutes, then leaves another mark.

    Args:
        path: Where to leave the marks.
    """
    import time

    open(path + ".started", "w").close()
    time.sleep(300)
    open(path + ".finished", "w").close()
    return "slept"


@pytest.fixture
async def api(make_app: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    # the tool leaves marks in the test's directory, which the bubblewrap sandbox would hide from it: the
    # plain child runner (one tenant) shows what cancel does to a tool's process; the sandbox's own kill of
    # its namespace on cancel is tested in tests/tools/test_bubblewrap.py
    app = make_app(settings={"tool_timeout_s": 3600, "tool_executor": "subprocess"})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            yield client, app.state.services.store


async def until(check: Callable[[], Any], what: str) -> Any:
    """Poll `check` (sync or async) until it returns something truthy, within `SETTLE_S`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + SETTLE_S
    while loop.time() < deadline:
        value = check()
        if inspect.isawaitable(value):
            value = await value
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"never: {what}")


def marked(marks: Path, what: str) -> bool:
    """Whether the tool left its `what` mark."""
    return Path(f"{marks}.{what}").exists()


async def status(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = (await client.get(f"/v1/runs/{run_id}")).json()
    return run


async def cancel_and_check(client: httpx.AsyncClient, store: Store, group_id: str, run_id: str) -> None:
    """Cancel the group's run; it must end cancelled, as every run ends, and free the group."""
    response = await client.post(f"/v1/groups/{group_id}/messages/cancel", json={})
    assert response.status_code == 200 and response.json() == {run_id: "cancelled"}

    async def ended() -> dict[str, Any] | None:
        run = await status(client, run_id)
        return run if run["status"] not in ("created", "running") else None

    run = await until(ended, f"run {run_id} ends after its cancel")
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    rows = await store.read_events("default", run_id, 0, 100_000)
    assert rows[-1][1] == "[DONE]"
    stops = [e for _, e in rows if '"stop_reason"' in e and '"message_type":"stop_reason"' in e]
    assert stops and '"cancelled"' in stops[-1]


async def history_types(client: httpx.AsyncClient, group_id: str) -> list[str]:
    messages = (await client.get(f"/v1/groups/{group_id}/messages")).json()
    return [m["message_type"] for m in messages]


async def send_async(client: httpx.AsyncClient, group_id: str, body: dict[str, Any]) -> str:
    response = await client.post(f"/v1/groups/{group_id}/messages/async", json=body)
    assert response.status_code == 200, response.text
    run_id: str = response.json()["id"]
    return run_id


async def tool_agent(client: httpx.AsyncClient, marks: Path, **extra: Any) -> dict[str, Any]:
    put = await client.put("/v1/tools", json={"source_code": dedent(inspect.getsource(slow_tool)), **extra})
    assert put.status_code == 200, put.text
    calls = [{"name": "slow_tool", "arguments": {"path": str(marks)}}]
    script = {"steps": [calls], "replies": ["ok"]}
    body = {"name": "Ada", "tool_ids": [put.json()["id"]], "metadata": {"scripted": script}}
    agent: dict[str, Any] = (await client.post("/v1/agents", json=body)).json()
    return agent


async def test_cancel_during_a_long_model_wait(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    agent = await create_agent(client, "Ada", tokens=2, delay_s=LONG_S)
    group = await create_group(client, [agent["id"]])
    run_id = await send_async(client, group["id"], {"input": "hi"})

    async def started() -> bool:
        return await history_types(client, group["id"]) == ["user_message"]

    await until(started, "the run committed its input and waits on the model")
    await cancel_and_check(client, store, group["id"], run_id)
    assert await history_types(client, group["id"]) == ["user_message"], "the interrupted step wrote nothing"
    # the group takes the next message (it waits on the slow model again: cancel that too)
    nxt = await send_async(client, group["id"], {"input": "again"})
    await cancel_and_check(client, store, group["id"], nxt)


async def test_cancel_during_a_long_tool_kills_it(api: tuple[httpx.AsyncClient, Store], tmp_path: Path) -> None:
    client, store = api
    marks = tmp_path / "tool"
    agent = await tool_agent(client, marks)
    group = await create_group(client, [agent["id"]])
    run_id = await send_async(client, group["id"], {"input": "go"})
    await until(lambda: marked(marks, "started"), "the tool started")
    await cancel_and_check(client, store, group["id"], run_id)
    assert "tool_return_message" not in await history_types(client, group["id"])
    await asyncio.sleep(1.0)  # a surviving process would still be sleeping; this only lets a kill land
    assert not marked(marks, "finished")
    await client.patch(
        f"/v1/agents/{agent['id']}", json={"metadata": {"scripted": {"replies": ["fast"], "use_tools": False}}}
    )
    events = payloads(await stream(client, group["id"], {"input": "next"}))
    assert events[-2]["stop_reason"] == "end_turn", "the group takes the next message"


async def test_cancel_during_a_fan_out_worker(api: tuple[httpx.AsyncClient, Store]) -> None:
    client, store = api
    boss = await create_agent(
        client, "Boss", calls=[{"name": BROADCAST, "arguments": {"message": "ideas"}}], replies=["sum"]
    )
    quick = await create_agent(client, "Quick", replies=["quick idea"])
    slow = await create_agent(client, "Slow", tokens=2, delay_s=LONG_S)
    group = await create_group(
        client, [quick["id"], slow["id"]], {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    )
    run_id = await send_async(client, group["id"], {"input": "go"})

    async def broadcasting() -> bool:
        rows = await store.read_events("default", run_id, 0, 1000)
        return any(BROADCAST in data for _, data in rows)

    await until(broadcasting, "the supervisor broadcast")
    await cancel_and_check(client, store, group["id"], run_id)
    assert "tool_return_message" not in await history_types(client, group["id"]), "the broadcast never returned"
    assert (await client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "x"})).status_code == 200


async def test_cancel_during_an_approved_tool(api: tuple[httpx.AsyncClient, Store], tmp_path: Path) -> None:
    client, store = api
    marks = tmp_path / "approved"
    agent = await tool_agent(client, marks, default_requires_approval=True)
    group = await create_group(client, [agent["id"]])
    first = payloads(await stream(client, group["id"], {"input": "go"}))
    assert first[-2]["stop_reason"] == "requires_approval"
    call_id = first[0]["tool_call"]["tool_call_id"]
    approve = {"type": "approval", "tool_call_id": call_id, "approve": True}
    run_id = await send_async(client, group["id"], {"messages": [{"type": "approval", "approvals": [approve]}]})
    await until(lambda: marked(marks, "started"), "the approved tool started")
    await cancel_and_check(client, store, group["id"], run_id)
    await asyncio.sleep(1.0)
    assert not marked(marks, "finished")
    assert "tool_return_message" not in await history_types(client, group["id"])
