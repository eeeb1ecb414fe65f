"""Direct start (`CHORUS_WORKFLOW_START=invoke`, the template's default): the API invokes the Plan
function asynchronously, which runs the run alone under the run's lease and hands it to an execution
only for what needs the definition. The guarantees are the execution's: the same log and history,
cancel, a dead attempt's output marked abandoned and its turn run again, one writer at a time."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from unittest import mock

import pytest

from chorus.errors import StorageUnavailable
from chorus.store.dynamodb import DynamoDBStore
from chorus.workflow.direct import FIRST_OWNER
from chorus.workflow.inline import plan_inline
from chorus.workflow.state import WorkflowInput
from chorus.workflow.tasks import Workflow
from support import create_agent, create_group
from support.run_writes import of_run, only_renewed, run_writes
from support.workflow_harness import (
    Crash,
    Harness,
    background,
    check_exact,
    crash_mid_turn,
    elided,
    history_of,
    logged,
    supervisor_of_four,
    talking,
)

SHAPELESS = frozenset({"date", "created_at", "seq_id", "otid", "ttft_ns", "total_duration_ns", "step_count"})


def shape(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with what differs between two runs of the same conversation (ids, dates, timings) elided."""
    return [elided(e, SHAPELESS) for e in events]


@contextlib.contextmanager
def dying_at_commit(agent_id: str, only: Callable[[], bool] = lambda: True) -> Iterator[None]:
    """Every commit of a step of `agent_id` kills the attempt making it (while `only()` says so):
    what a tool that takes its host down does to whatever runs its turn."""
    original = DynamoDBStore.commit_step

    async def dying(self: DynamoDBStore, step: Any, records: Any) -> None:
        if step.agent_id == agent_id and only():
            raise Crash("the sandbox's host was killed")
        await original(self, step, records)

    with mock.patch.object(DynamoDBStore, "commit_step", dying):
        yield


async def round_robin(h: Harness) -> str:
    agents = [await create_agent(h.client, name, tokens=3) for name in ("Ada", "Bob", "Cy")]
    return str((await create_group(h.client, [a["id"] for a in agents]))["id"])


async def test_a_round_robin_run_completes_on_one_invocation_with_no_execution(direct: Harness) -> None:
    """One Plan invocation, no execution; its log and history are what an execution of the same run writes."""
    h = direct
    group_id = await round_robin(h)
    events = await background(h, group_id, stream_tokens=True)
    run_id = events[0]["run_id"]
    await h.settle()
    assert h.executions() == []
    assert [h.faults.count(task) for task in ("plan", "step", "finish")] == [1, 0, 0]
    assert [e["direct"] for e in h.async_invokes.delivered] == [True]
    log, history = await logged(h, run_id), await history_of(h, group_id)
    check_exact(log, history)
    assert (await h.client.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"
    run = await h.store.get_run("default", run_id)
    assert not run.options.get("in_execution")

    executor = h.app.state.services.runs.remote
    as_execution = executor.settings.model_copy(update={"workflow_start": "execution"})
    with mock.patch.object(executor, "settings", as_execution):
        other_group = await round_robin(h)
        other = await background(h, other_group, stream_tokens=True)
        await h.settle()
    assert [e["name"] for e in h.executions()] == [other[0]["run_id"]]
    assert shape(log) == shape(await logged(h, other[0]["run_id"]))
    assert shape(events) == shape(other)
    assert shape(history[1:]) == shape((await history_of(h, other_group))[1:])


async def test_a_supervisor_fan_out_is_handed_over_to_an_execution_and_completes(direct: Harness) -> None:
    h = direct
    group_id = await supervisor_of_four(h)
    events = await background(h, group_id, "split this")
    run_id = events[0]["run_id"]
    executions = await h.settle()
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
    speakers = [e["name"] for e in events if e["message_type"] == "assistant_message"]
    assert speakers == ["W0", "W1", "W2", "W3", "Boss"]
    steps = [event for task, event in h.faults.calls if task == "step"]
    assert sorted(s["call"] for s in steps) == [0, 1, 2, 3]
    plans = [event for task, event in h.faults.calls if task == "plan"]
    assert [p.get("direct", False) for p in plans] == [True, False, False], "direct, then the execution's two"
    run = await h.store.get_run("default", run_id)
    assert run.options["in_execution"] is True and run.status == "completed"
    check_exact(await logged(h, run_id), await history_of(h, group_id))


async def test_a_run_past_the_inline_budget_is_handed_over(direct: Harness) -> None:
    """The budget is checked before each turn: with a clock past it after Ada's turn, Bob's is the Map's."""
    h = direct
    agents = [await create_agent(h.client, name, tokens=2) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])
    ticks = iter([0.0, 0.0, *range(1000, 100_000, 1000)])
    late = mock.patch("chorus.workflow.handlers.plan_inline", lambda w, raw, budget_s: plan_inline(
        w, raw, budget_s, clock=lambda: float(next(ticks))))  # fmt: skip
    import chorus.workflow.direct as direct_module

    original = direct_module.plan_direct

    async def late_direct(w: Any, raw: dict[str, Any], budget_s: float, caught: Any) -> dict[str, Any]:
        return await original(w, raw, budget_s, caught, clock=lambda: float(next(ticks)))

    with late, mock.patch("chorus.workflow.handlers.plan_direct", late_direct):
        events = await background(h, group["id"])
        executions = await h.settle()
    run_id = events[0]["run_id"]
    assert [e["name"] for e in events if e["message_type"] == "assistant_message"] == ["Ada", "Bob"]
    assert [e["name"] for e in executions] == [run_id]
    assert h.faults.count("step") == 1, "Bob's turn, in the Map"
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))


async def test_the_api_answers_503_and_ends_the_run_when_lambda_refuses_the_invoke(direct: Harness) -> None:
    h = direct
    group_id = await round_robin(h)
    h.faults.refuse_async = True
    response = await h.client.post(f"/v1/groups/{group_id}/messages/stream", json={"input": "hi", "background": True})
    assert response.status_code == 503, response.text
    await h.settle()
    assert h.async_invokes.delivered == [] and h.executions() == []
    runs = (await h.client.get("/v1/runs", params={"group_id": group_id})).json()
    assert [r["status"] for r in runs] == ["failed"]
    rows = await h.store.read_events("default", runs[0]["id"], 0, 1000)
    assert rows[-1][1] == "[DONE]" and Counter(d for _, d in rows)["[DONE]"] == 1
    h.faults.refuse_async = False
    again = await h.client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "again"})
    assert again.status_code == 200, "the ended run released the group"
    await h.settle()
    await asyncio.sleep(0)


async def test_cancel_mid_turn_ends_a_direct_run_cancelled_once(direct: Harness) -> None:
    h = direct
    group_id, run_id = await talking(h)
    assert (await h.client.post(f"/v1/groups/{group_id}/messages/cancel", json={})).status_code == 200
    await h.settle()
    await asyncio.sleep(0.3)  # the Plan sees the flag within its heartbeat and stops writing
    rows = await h.store.read_events("default", run_id, 0, 100_000)
    assert rows[-1][1] == "[DONE]" and Counter(d for _, d in rows)["[DONE]"] == 1
    assert [e["seq_id"] for e in await logged(h, run_id)] == list(range(1, len(rows)))
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"
    assert h.executions() == [] and h.faults.errors == []
    (result,) = [r for task, r in h.faults.results if task == "plan"]
    assert (result["action"], result["stop_reason"]) == ("done", "cancelled")


async def test_a_direct_plan_killed_mid_turn_is_retried_by_lambda_and_the_run_completes(direct: Harness) -> None:
    """Lambda retries the dead attempt's event after its lease expired: the retry takes the run over
    (a new incarnation), marks the dead attempt's output abandoned and runs Ada's turn again."""
    h = direct
    group_id, events = await crash_mid_turn(h, "plan")
    await h.settle()
    assert h.executions() == [] and h.faults.count("plan") == 2
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group_id))
    assert [m.get("name") for m in (await history_of(h, group_id))[1:]] == ["Ada", "Bob"]
    run = await h.store.get_run("default", events[0]["run_id"])
    assert run.status == "completed" and run.incarnation == 2


async def test_a_duplicate_delivery_running_at_the_same_time_leaves_one_writer(direct: Harness) -> None:
    """Lambda delivers the event twice, both attempts in flight together: one claims the first
    attempt and runs the run under the lease the API created it with, the other finds it held and
    returns without writing (and without an error)."""
    h = direct
    agents = [await create_agent(h.client, name, tokens=10, delay_s=0.01) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])
    together = threading.Barrier(2, timeout=30)

    def meet(event: dict[str, Any]) -> None:
        together.wait()

    h.faults.rules[("plan", 1)] = h.faults.rules[("plan", 2)] = meet
    h.async_invokes.duplicates = 1
    with run_writes(h) as writes:
        events = await background(h, group["id"], stream_tokens=True)
        run_id = events[0]["run_id"]
        await h.settle()
    assert h.faults.count("plan") == 2 and h.faults.errors == [] and h.executions() == []
    outcomes = sorted(str(r.get("outcome", r.get("action"))) for task, r in h.faults.results if task == "plan")
    assert outcomes == ["done", "held_elsewhere"]
    owner = h.async_invokes.delivered[0][FIRST_OWNER]
    assert only_renewed(of_run(writes, run_id), owner), "the claim's winner drove it under the lease it was sent"
    log = await logged(h, run_id)
    assert not [e for e in log if "abandoned" in e]
    check_exact(log, await history_of(h, group["id"]))
    run = await h.store.get_run("default", run_id)
    assert run.status == "completed" and run.incarnation == 1


async def test_the_sweep_hands_over_a_direct_run_whose_attempts_died_but_not_one_whose_lease_is_live(
    direct: Harness,
) -> None:
    """The only attempt (no retries left, as after Lambda's last) dies mid-turn holding the lease.
    While the lease is live, and for the grace after it expired, the sweep leaves the run to Lambda;
    then it hands the run over to an execution, which goes on from the last commit."""
    h = direct
    executor = h.app.state.services.runs.remote
    executor.direct_grace_s = 1.0
    h.async_invokes.retries = 0
    ada = await create_agent(h.client, "Ada", tokens=40, delay_s=0.002)
    bob = await create_agent(h.client, "Bob", tokens=3)
    group = await create_group(h.client, [ada["id"], bob["id"]])

    def direct_attempt() -> bool:
        here = h.faults.here()
        return here is not None and bool(here[2].get("direct"))

    with dying_at_commit(ada["id"], direct_attempt):
        sent = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
        run_id = sent.json()["id"]
        for _ in range(3000):
            if h.faults.errors:
                break
            await asyncio.sleep(0.01)
        assert h.faults.errors == [("plan", "Runtime.ExitError")]
        run = await h.store.get_run("default", run_id)
        assert run.lease_owner is not None and run.lease_expires_at > time.time()
        await h.app.state.services.runs.recover()
        assert h.executions() == [], "its lease is live: an attempt may be running it"
        await asyncio.sleep(max(0.0, run.lease_expires_at - time.time()) + 0.1)
        await h.app.state.services.runs.recover()
        assert h.executions() == [], "expired within the grace: a retry of Lambda's may still come"
    await asyncio.sleep(executor.direct_grace_s)
    await h.app.state.services.runs.recover()
    executions = await h.settle()
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
    run = await h.store.get_run("default", run_id)
    assert run.status == "completed" and run.options["in_execution"] is True
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))
    assert [m.get("name") for m in (await history_of(h, group["id"]))[1:]] == ["Ada", "Bob"]


async def test_a_step_that_kills_every_attempt_fails_its_run_after_the_bound(direct: Harness) -> None:
    """A turn that kills whatever runs it (a tool that takes its host down) is attempted
    `max_run_attempts` times in all, across Lambda's retries, then ended by the sweep with the
    poisoned-run error instead of being handed to an execution to kill more workers."""
    h = direct
    await h.app.state.services.runs.recovery.stop_sweeper()  # swept below, once Lambda is done
    executor = h.app.state.services.runs.remote
    ada = await create_agent(h.client, "Ada", tokens=3)
    bob = await create_agent(h.client, "Bob", tokens=3)
    group = await create_group(h.client, [ada["id"], bob["id"]])
    with dying_at_commit(ada["id"]):
        sent = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"})
        run_id = sent.json()["id"]
        for _ in range(6000):
            if len(h.faults.errors) == 3:
                break
            await asyncio.sleep(0.01)
        assert h.faults.errors == [("plan", "Runtime.ExitError")] * 3, "Lambda's two retries, then no more"
        run = await h.store.get_run("default", run_id)
        assert run.options["recovery"]["deaths"] == 2, "each retry counted the attempt it took over from"
        executor.direct_grace_s = 0.5
        await asyncio.sleep(max(0.0, run.lease_expires_at - time.time()) + executor.direct_grace_s + 0.1)
        await h.app.state.services.runs.recover()
    await h.settle()
    run = await h.store.get_run("default", run_id)
    assert run.status == "failed" and h.executions() == [], "ended, not handed to an execution"
    log = await logged(h, run_id)
    (error,) = [e for e in log if e.get("message_type") == "error_message"]
    assert "stopped 3 times" in error["message"]
    assert [m.get("name") for m in (await history_of(h, group["id"]))[1:]] == []


async def test_an_unavailable_store_fails_the_attempt_and_lambda_retries_it(direct: Harness) -> None:
    h = direct
    agents = [await create_agent(h.client, name, tokens=2) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])

    def unavailable(event: dict[str, Any]) -> None:
        raise StorageUnavailable("DynamoDB is throttling")

    h.faults.rules[("plan", 1)] = unavailable
    events = await background(h, group["id"])
    await h.settle()
    assert h.faults.errors == [("plan", "StorageUnavailable")] and h.faults.count("plan") == 2
    assert h.executions() == []
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group["id"]))


@pytest.mark.parametrize("starter", ["retry", "sweep"])
async def test_an_attempt_dying_between_the_hand_over_and_its_execution_start_is_started_after_all(
    direct: Harness, starter: str
) -> None:
    """The run is marked handed over, then the attempt dies before `StartExecution`: Lambda's retry
    finds the run handed over and starts its execution (idempotent by its name) instead of running it;
    with no retry left, the API's sweep starts it (each case with the other starter out of the way)."""
    h = direct
    if starter == "retry":
        await h.app.state.services.runs.recovery.stop_sweeper()
    else:
        h.async_invokes.retries = 0
    boss = await create_agent(h.client, "Boss", tokens=2)
    workers = [await create_agent(h.client, f"W{i}", tokens=2) for i in range(2)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    group = await create_group(h.client, [w["id"] for w in workers], config)
    original = Workflow.start_execution_of
    died: list[str] = []

    async def dying(self: Workflow, state: WorkflowInput) -> None:
        here = h.faults.here()
        if here is not None and here[2].get("direct") and not died:
            died.append(state.run_id)
            raise Crash("killed after the hand-over was written")
        await original(self, state)

    with mock.patch.object(Workflow, "start_execution_of", dying):
        events = await background(h, group["id"], "split this")
    run_id = events[0]["run_id"]
    executions = await h.settle()
    assert died == [run_id] and h.faults.errors == [("plan", "Runtime.ExitError")]
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
    outcomes = [r.get("outcome") for task, r in h.faults.results if task == "plan" and "outcome" in r]
    assert outcomes == (["handed_over"] if starter == "retry" else []), "a retry only starts the execution"
    assert [e["name"] for e in events if e["message_type"] == "assistant_message"] == ["W0", "W1", "Boss"]
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))
