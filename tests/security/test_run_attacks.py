"""A tenant's run cannot hold the service: cancel ends it at once whatever it waits on, on a real server.

A real uvicorn server on loopback with two API-key tenants. Bob starts a run
that waits on a minute-long model call, or on a tool sleeping for minutes in
the sandbox, and cancels it: the run must end `cancelled` long before the
wait would have, the tool's whole sandbox must be gone from the host, and the
group must take the next message. Alice cannot cancel bob's runs (404).
(The poisoned run, a tool that kills its server on every attempt, is
`test_poisoned_run.py` beside this file, against a real server restarted after
each death.)
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from chorus.devserver import Server, running_server
from chorus.tools.bubblewrap import bubblewrap_problem
from support import create_agent, create_group
from support.host_processes import all_gone, process_marker, running

pytestmark = pytest.mark.e2e

ALICE, BOB = "ka-alice-key", "kb-bob-key"
SETTLE_S = 30.0
"""Generous bound for a cancelled run to end; what it waits on takes far longer."""
PROBLEM = bubblewrap_problem()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {"CHORUS_API_KEYS": f"{ALICE}=alice,{BOB}=bob", "CHORUS_TOOL_TIMEOUT_S": "3600"}
    with running_server(env) as s:
        yield s


@pytest.fixture
async def clients(server: Server) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    def client(key: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=60)

    async with client(ALICE) as alice, client(BOB) as bob:
        yield alice, bob


async def until(check: Any, what: str) -> Any:
    for _ in range(int(SETTLE_S / 0.05)):
        value = await check()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"never: {what}")


async def start(bob: httpx.AsyncClient, group_id: str) -> str:
    response = await bob.post(f"/v1/groups/{group_id}/messages/async", json={"input": "Go."})
    assert response.status_code == 200, response.text
    run_id: str = response.json()["id"]
    return run_id


async def cancel_as_bob_not_alice(
    alice: httpx.AsyncClient, bob: httpx.AsyncClient, group_id: str, run_id: str
) -> dict[str, Any]:
    """Alice cannot reach bob's group; bob's cancel ends the run promptly, as every run ends."""
    assert (await alice.post(f"/v1/groups/{group_id}/messages/cancel", json={})).status_code == 404
    assert (await alice.get(f"/v1/runs/{run_id}")).status_code == 404
    cancelled = await bob.post(f"/v1/groups/{group_id}/messages/cancel", json={})
    assert cancelled.status_code == 200 and cancelled.json() == {run_id: "cancelled"}

    async def ended() -> dict[str, Any] | None:
        run: dict[str, Any] = (await bob.get(f"/v1/runs/{run_id}")).json()
        return run if run["status"] not in ("created", "running") else None

    run: dict[str, Any] = await until(ended, f"run {run_id} ends after its cancel")
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    return run


async def test_cancel_during_a_long_model_wait(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    alice, bob = clients
    agent = await create_agent(bob, "Slow", tokens=2, delay_s=60)  # the longest wait the model allows
    group = await create_group(bob, [agent["id"]])
    run_id = await start(bob, group["id"])

    async def waiting() -> bool:
        return bool((await bob.get(f"/v1/runs/{run_id}")).json()["status"] == "running")

    await until(waiting, "the run is waiting on its model")
    await cancel_as_bob_not_alice(alice, bob, group["id"], run_id)
    nxt = await start(bob, group["id"])  # the group takes the next message
    await cancel_as_bob_not_alice(alice, bob, group["id"], nxt)


SLEEPING_TOOL = '''
def nap(marker: str) -> str:
    """Sleeps for minutes in a child process named by `marker`.

    Args:
        marker: a word on the child's command line
    """
    import subprocess
    subprocess.run(["sh", "-c", "sleep 600", marker])
    return "woke up"
'''


@pytest.mark.skipif(PROBLEM is not None, reason=f"the sandbox cannot run here: {PROBLEM}")
async def test_cancel_during_a_tool_kills_its_sandbox(clients: tuple[httpx.AsyncClient, httpx.AsyncClient]) -> None:
    alice, bob = clients
    tool = await bob.put("/v1/tools", json={"source_code": SLEEPING_TOOL})
    assert tool.status_code == 200, tool.text
    with process_marker() as marker:
        script = {"steps": [[{"name": "nap", "arguments": {"marker": marker}}]], "replies": ["done"]}
        body = {"name": "Napper", "tool_ids": [tool.json()["id"]], "metadata": {"scripted": script}}
        agent = await bob.post("/v1/agents", json=body)
        assert agent.status_code == 200, agent.text
        group = await create_group(bob, [agent.json()["id"]])
        run_id = await start(bob, group["id"])

        async def sleeping() -> bool:
            return bool(running(marker))

        await until(sleeping, "the tool's child is asleep on the host")
        await cancel_as_bob_not_alice(alice, bob, group["id"], run_id)
        assert await all_gone(marker), "the tool's sandbox outlived its cancelled run"
    history = (await bob.get(f"/v1/groups/{group['id']}/messages")).json()
    assert "tool_return_message" not in [m["message_type"] for m in history]  # the step was not committed
    nxt = await bob.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "Again."})
    assert nxt.status_code == 200, nxt.text
    await cancel_as_bob_not_alice(alice, bob, group["id"], nxt.json()["id"])
