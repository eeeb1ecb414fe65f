"""A Plan running a run's turns inline reads the run once per invocation, not once per round.

Counted, not timed: every DynamoDB read request, by the task that made it. The heartbeat's reads
(one a second while a turn runs: they are how a cancel is seen) are counted apart, as their number
depends on how long the turns take. A round robin of 6 agents runs 3 more rounds than one of 3:
the Plan loads 3 more agents once, and its rounds read nothing. Re-reading the run, the group, every
agent, the log's end, the history and the steps for the turn and again for the next plan, as each
round did, added 10 + 2 x agents reads a round: 66 reads for 3 agents, 153 for 6."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from unittest import mock

from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.dynamodb_wire import DynamoDBTable
from support import create_agent, create_group
from support.workflow_harness import Faults, Harness, check_exact, history_of, logged

T = TypeVar("T")
READS = frozenset({"get_item", "query", "batch_get_item", "transact_get_items", "scan"})
HEARTBEAT = "heartbeat"


@contextmanager
def counting_reads(faults: Faults) -> Iterator[Counter[str]]:
    """Read requests by who made them: the task (`plan`, `step`, `finish`), `heartbeat`, or `api`.
    The store calls DynamoDB on worker threads; each call is tagged on its way there."""
    counted: Counter[str] = Counter()
    origin = threading.local()
    store_call = DynamoDBCore._call  # the one way the store reaches its threads
    table_call = DynamoDBTable.call

    async def tagged_call(self: DynamoDBCore, fn: Callable[..., T], *args: Any) -> T:
        here = faults.here()
        task = asyncio.current_task()
        who = here[0] if here is not None else "api"
        if task is not None and task.get_name().startswith("lease-"):
            who = HEARTBEAT

        def tagged(*inner: Any) -> T:
            origin.who = who
            try:
                return fn(*inner)
            finally:
                origin.who = None

        return await store_call(self, tagged, *args)

    def counted_call(self: DynamoDBTable, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation in READS:
            counted[getattr(origin, "who", None) or "untagged"] += 1
        return table_call(self, operation, **kwargs)

    with mock.patch.object(DynamoDBCore, "_call", tagged_call), mock.patch.object(DynamoDBTable, "call", counted_call):
        yield counted


async def plan_reads(h: Harness, agents: int) -> int:
    """Read requests of the Plan (its heartbeat aside) that runs a background round robin of `agents`."""
    ids = [(await create_agent(h.client, f"A{i}", tokens=2))["id"] for i in range(agents)]
    group = await create_group(h.client, ids)
    await h.settle()
    plans = h.faults.count("plan")
    with counting_reads(h.faults) as reads:
        response = await h.client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "go"})
        assert response.status_code == 200, response.text
        await h.settle()
    run_id = response.json()["id"]
    assert (await h.client.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"
    assert h.faults.count("plan") == plans + 1 and h.faults.count("step") == 0, "every round ran in the one Plan"
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))
    assert reads["untagged"] == 0
    return reads["plan"]


async def test_the_plan_reads_the_run_once_not_once_per_round(inline: Harness) -> None:
    three = await plan_reads(inline, 3)
    six = await plan_reads(inline, 6)
    assert six - three <= 6 - 3, f"3 agents: {three} reads, 6 agents: {six}: more than their 3 more agents"
