"""On Step Functions too: a step that kills every worker fails its run after a bound, and cancel reaches a waiting Step.

The bound is the definition's Retry of a Step whose Lambda died
(`Runtime.ExitError`, a timeout): three attempts, then the Catch hands the
error to Finish, which ends the run `failed` naming why. A cancelled run's
Step that is waiting on a model (minutes of `delay_s`) sees the stored cancel
flag within its heartbeat and stops: the execution settles long before the
model would have answered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from support import create_agent, create_group
from support.workflow_harness import Crash, Harness, background


async def test_a_step_whose_lambda_dies_every_time_fails_the_run_after_the_bound(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2)
    group = await create_group(h.client, [ada["id"]])

    def dies(event: dict[str, Any]) -> None:
        raise Crash("the tool killed the Lambda's runtime")

    for attempt in range(1, 10):
        h.faults.rules[("step", attempt)] = dies
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["stop_reason", "error_message"]
    assert events[0]["stop_reason"] == "error"
    assert "stopped (Runtime.ExitError) on every attempt" in events[1]["message"]
    assert h.faults.count("step") == 3, "the first attempt and the definition's two retries, no more"
    executions = await h.settle()
    assert [e["status"] for e in executions] == ["SUCCEEDED"], "the workflow ended the run itself, in Finish"
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "error"
    h.faults.rules.clear()
    assert (await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "x"})).status_code == 200


async def test_cancel_reaches_a_step_waiting_on_a_slow_model(harness: Harness) -> None:
    h = harness
    ada = await create_agent(h.client, "Ada", tokens=2, delay_s=60)  # the longest wait the scripted model allows
    group = await create_group(h.client, [ada["id"]])
    response = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "talk"})
    run_id = response.json()["id"]
    for _ in range(3000):
        if h.faults.count("step") and h.faults.inflight:
            break
        await asyncio.sleep(0.01)
    assert h.faults.inflight, "a Step is running, waiting on the model"
    cancelled = await h.client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
    assert cancelled.status_code == 200, cancelled.text
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    await h.settle(timeout_s=60)  # the Step would wait minutes for its model; cancelled, it returns
    assert not h.faults.inflight and h.faults.count("step") == 1
    assert not await h.store.list_steps("default", run_id) or all(
        s.agent_id is None for s in await h.store.list_steps("default", run_id)
    ), "the interrupted step committed nothing"
    follow = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "again"})
    assert follow.status_code == 200, "the cancelled run released the group"
    await h.client.post(f"/v1/groups/{group['id']}/messages/cancel", json={})
