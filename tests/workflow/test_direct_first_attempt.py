"""A directly started run is created held by its first attempt's lease (`chorus.workflow.direct`).

The API creates the run `running`, held by a fresh owner it also sends in the invoke event; the
one attempt that claims the run's first attempt drives it under that lease without writing the
run item before its end. Every other attempt (a duplicate, a Lambda retry, a stale event) takes
the run as any attempt does: only once the lease expired, with a new incarnation and the death
counted, or not at all. (A duplicate delivered at the same time: `test_direct_start.py`.)"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any
from unittest import mock

from chorus.store.dynamodb import DynamoDBStore
from chorus.workflow.direct import FIRST_OWNER, new_first_owner
from chorus.workflow.executor import StepFunctionsExecutor
from support import create_agent, create_group
from support.lambda_async import LEASE_TTL_S
from support.run_writes import of_run, only_renewed, renewal, run_writes
from support.workflow_harness import Crash, Harness, background, check_exact, crash_mid_turn, history_of, logged


async def two_agents(h: Harness, tokens: int = 3) -> str:
    agents = [await create_agent(h.client, name, tokens=tokens) for name in ("Ada", "Bob")]
    return str((await create_group(h.client, [a["id"] for a in agents]))["id"])


async def test_the_run_is_created_running_and_its_first_attempt_writes_it_only_to_end_it(direct: Harness) -> None:
    h = direct
    group_id = await two_agents(h)
    with run_writes(h) as writes:
        events = await background(h, group_id)
        run_id = events[0]["run_id"]
        await h.settle()
    (event,) = h.async_invokes.delivered
    owner = event[FIRST_OWNER]
    created = of_run(writes, run_id, "api")[0].run
    assert (created.status, created.lease_owner) == ("running", owner), "running from the moment it is accepted"
    assert created.lease_expires_at > time.time() - 60
    assert of_run(writes, run_id)[-1].run.status == "completed"
    assert only_renewed(of_run(writes, run_id), owner), "no write takes the run: it was the attempt's from its creation"
    assert [r.get("action") for task, r in h.faults.results if task == "plan"] == ["done"]
    check_exact(await logged(h, run_id), await history_of(h, group_id))


async def test_a_first_attempt_killed_mid_turn_is_taken_over_once_its_lease_expired(direct: Harness) -> None:
    h = direct
    with run_writes(h) as writes:
        group_id, events = await crash_mid_turn(h, "plan")
        run_id = events[0]["run_id"]
        await h.settle()
    created = of_run(writes, run_id, "api")[0].run
    takeover = next(w for w in of_run(writes, run_id, "plan") if w.run.lease_owner != created.lease_owner)
    assert takeover.at >= created.lease_expires_at, "the retry waited for the first attempt's lease"
    assert takeover.run.incarnation == 2 and takeover.run.options["recovery"]["deaths"] == 1
    check_exact(await logged(h, run_id), await history_of(h, group_id))
    run = await h.store.get_run("default", run_id)
    assert run.status == "completed" and run.incarnation == 2


async def test_an_attempt_killed_right_after_its_claim_is_taken_over_by_lambdas_retry(direct: Harness) -> None:
    """The claim is all the first attempt did: the run stays held by its lease until it expires,
    then the retry (which finds the first attempt claimed) takes it over and counts the death."""
    h = direct
    group_id = await two_agents(h)
    claim = DynamoDBStore.claim_first_attempt
    killed: list[str] = []

    async def dying(self: DynamoDBStore, tenant_id: str, run_id: str, attempt_id: str) -> bool:
        won = await claim(self, tenant_id, run_id, attempt_id)
        if not killed:
            killed.append(run_id)
            raise Crash("the sandbox was killed")
        return won

    with mock.patch.object(DynamoDBStore, "claim_first_attempt", dying), run_writes(h) as writes:
        events = await background(h, group_id)
        run_id = events[0]["run_id"]
        await h.settle()
    assert killed == [run_id] and h.faults.errors == [("plan", "Runtime.ExitError")] and h.faults.count("plan") == 2
    created = of_run(writes, run_id, "api")[0].run
    (takeover, *_) = of_run(writes, run_id, "plan")
    assert takeover.at >= created.lease_expires_at and takeover.run.lease_owner != created.lease_owner
    assert takeover.run.incarnation == 2 and takeover.run.options["recovery"]["deaths"] == 1
    check_exact(await logged(h, run_id), await history_of(h, group_id))
    assert [m.get("name") for m in (await history_of(h, group_id))[1:]] == ["Ada", "Bob"]


async def test_a_stale_owner_drives_nothing_and_the_sweep_hands_the_run_over(direct: Harness) -> None:
    """An event whose owner is not the run's is an attempt like any other: the run's lease is live,
    so it leaves; Lambda does not retry a success, so the sweep hands the run to an execution once
    its lease has been expired for the grace (what it does for a run whose Plan never came)."""
    h = direct
    executor: StepFunctionsExecutor = h.app.state.services.runs.remote
    executor.direct_grace_s = 0.5
    group_id = await two_agents(h)
    invoke = StepFunctionsExecutor.invoke_plan

    async def stale(self: StepFunctionsExecutor, state: Any, first_owner: str | None = None) -> None:
        await invoke(self, state, new_first_owner())

    with mock.patch.object(StepFunctionsExecutor, "invoke_plan", stale):
        sent = await h.client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "hi"})
    run_id = sent.json()["id"]
    assert sent.json()["status"] == "running"
    for _ in range(3000):
        if h.faults.results:
            break
        await asyncio.sleep(0.01)
    assert [r.get("outcome") for task, r in h.faults.results if task == "plan"] == ["held_elsewhere"]
    run = await h.store.get_run("default", run_id)
    assert (run.status, run.incarnation, run.version) == ("running", 1, 0), "untouched by the stale attempt"
    await asyncio.sleep(max(0.0, run.lease_expires_at - time.time()) + executor.direct_grace_s + 0.1)
    await h.app.state.services.runs.recover()
    executions = await h.settle()
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
    run = await h.store.get_run("default", run_id)
    assert run.status == "completed" and run.options["in_execution"] is True
    check_exact(await logged(h, run_id), await history_of(h, group_id))


async def test_a_first_attempt_that_comes_after_its_lease_expired_drives_the_run_as_the_first(
    direct: Harness,
) -> None:
    """Lambda's queue held the event past the lease: no attempt ran before it, so the claim's winner
    renews the lease it was sent and drives the run: no new incarnation, no death counted."""
    h = direct
    group_id = await two_agents(h)
    owner: list[str] = []

    def late(event: dict[str, Any]) -> None:
        owner.append(event[FIRST_OWNER])
        threading.Event().wait(LEASE_TTL_S + 0.2)  # the harness scales time.sleep (for moto)

    h.faults.rules[("plan", 1)] = late
    with run_writes(h) as writes:
        events = await background(h, group_id)
        run_id = events[0]["run_id"]
        await h.settle()
    created = of_run(writes, run_id, "api")[0].run
    (renewed, *_, end) = of_run(writes, run_id, "plan")
    assert created.lease_expires_at < renewed.at and renewal(renewed, owner[0])
    assert end.run.status == "completed" and end.run.incarnation == 1 and "recovery" not in end.run.options
    assert h.faults.count("plan") == 1 and h.faults.errors == []
    check_exact(await logged(h, run_id), await history_of(h, group_id))


async def test_the_first_attempt_reads_no_steps_nor_log_end_no_attempt_could_have_written(direct: Harness) -> None:
    """Nothing ran before the attempt that claimed the run's first attempt: its log is empty and it has
    no committed step, so it starts from nothing instead of reading both (a retry reads them)."""
    h = direct
    group_id = await two_agents(h)
    reads: list[str] = []

    def counted(name: str) -> Any:
        original = getattr(DynamoDBStore, name)

        async def read(self: DynamoDBStore, tenant_id: str, run_id: str, *args: Any) -> Any:
            running = h.faults.here()  # the task this thread runs: the Plan's handler, or None (the API)
            if running is not None and running[0] == "plan":
                reads.append(name)
            return await original(self, tenant_id, run_id, *args)

        return read

    with (
        mock.patch.object(DynamoDBStore, "list_steps", counted("list_steps")),
        mock.patch.object(DynamoDBStore, "last_seq", counted("last_seq")),
    ):
        events = await background(h, group_id)
        await h.settle()
    assert reads == [], reads
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group_id))
