"""Double-texting with background runs on Step Functions: the workflow's Finish hands the group on."""

from __future__ import annotations

import asyncio
import threading
from unittest import mock

from chorus.errors import RunEnded
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.records import MessageRecord, StepRecord
from support import create_agent, create_group
from support.workflow_harness import Harness, ended, is_direct, send


async def test_enqueued_background_runs_start_in_order_from_the_workflows_finish(started: Harness) -> None:
    """Each run's end starts the next in line as the API starts one: an execution, or directly."""
    h = started
    ada = await create_agent(h.client, "Ada", tokens=20, delay_s=0.02)
    group = await create_group(h.client, [ada["id"]])
    first = await send(h, group["id"], "one")
    queued = [await send(h, group["id"], text, "enqueue") for text in ("two", "three")]
    assert all(r["status"] == "created" for r in queued)
    assert [r["status"] for r in await ended(h, [first, *queued])] == ["completed"] * 3
    executions = await h.settle()
    if is_direct(h):
        assert executions == [] and h.async_invokes.delivered_runs() == [r["id"] for r in (first, *queued)]
    else:
        assert sorted(e["name"] for e in executions) == sorted(r["id"] for r in (first, *queued))
        assert all(e["status"] == "SUCCEEDED" for e in executions)
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    inputs = [m["content"] for m in history if m["message_type"] == "user_message"]
    assert inputs == ["one", "two", "three"]
    assert [m["run_id"] for m in history] == [r["id"] for r in (first, *queued) for _ in range(2)]


async def test_a_rollback_stops_the_running_execution_and_undoes_its_messages(started: Harness) -> None:
    h = started
    ada = await create_agent(h.client, "Ada", tokens=50, delay_s=0.2)
    group = await create_group(h.client, [ada["id"]])
    first = await send(h, group["id"], "one")
    second = await send(h, group["id"], "instead", "rollback")
    undone, done = await ended(h, [first, second])
    assert done["status"] == "completed"
    assert undone["status"] == "cancelled" and undone["metadata"]["rolled_back_by"] == second["id"]
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert {m["run_id"] for m in history} == {second["id"]}


async def test_a_straggling_step_cannot_put_a_rolled_back_runs_messages_back(harness: Harness) -> None:
    """StopExecution does not stop a Step Lambda already running: hold Ada's commit until the rollback
    has ended her run and deleted its messages, then let it commit. The store refuses it (`RunEnded`)."""
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=5, delay_s=0.01)
    group = await create_group(h.client, [ada["id"]])
    original = DynamoDBStore.commit_step
    reached, release = threading.Event(), threading.Event()
    held: list[StepRecord] = []
    outcome: list[BaseException | None] = []

    async def straggling(self: DynamoDBStore, step: StepRecord, records: list[MessageRecord]) -> None:
        if step.agent_id != ada["id"] or reached.is_set():
            await original(self, step, records)
            return
        held.append(step)
        reached.set()
        await asyncio.to_thread(release.wait, 60)
        try:
            await original(self, step, records)
        except BaseException as exc:
            outcome.append(exc)
            raise
        outcome.append(None)

    with mock.patch.object(DynamoDBStore, "commit_step", straggling):
        first = await send(h, group["id"], "one")
        assert await asyncio.to_thread(reached.wait, 60), "Ada's turn reached its commit"
        second = await send(h, group["id"], "instead", "rollback")
        for _ in range(500):
            undone = (await h.client.get(f"/v1/runs/{first['id']}")).json()
            if undone["metadata"].get("rolled_back_by") == second["id"]:
                break
            await asyncio.sleep(0.02)
        assert undone["status"] == "cancelled" and undone["metadata"]["rolled_back_by"] == second["id"]
        release.set()
        undone, done = await ended(h, [first, second])
    assert [s.run_id for s in held] == [first["id"]]
    assert done["status"] == "completed" and undone["status"] == "cancelled"
    history = (await h.client.get(f"/v1/groups/{group['id']}/messages", params={"order": "asc"})).json()
    assert {m["run_id"] for m in history} == {second["id"]}
    steps = await h.store.list_steps("default", first["id"])
    assert all(s.agent_id != ada["id"] for s in steps), "no step of Ada's was added to the ended run"
    assert len(outcome) == 1 and isinstance(outcome[0], RunEnded)
