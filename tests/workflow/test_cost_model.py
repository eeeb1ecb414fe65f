"""The cost model (`benchmarks/cost.py`) counts what the harness really ran, and prices it as AWS bills.

Counts, not time: one small background run on the workflow harness, its
counts checked against what the harness observed independently (the task
invocations it dispatched, the execution's own history) and against the
round structure of the definition; the request-unit rules on known items.
"""

from __future__ import annotations

import json
from typing import Any
from unittest import mock

import pytest

from chorus.engine.identity import INPUT_STEP
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_keys import INDEXES, ORDER_KEY
from support import create_agent, create_group
from support.benchmarks import load_benchmark
from support.workflow_harness import Harness, background

cost = load_benchmark("cost")
units = load_benchmark("dynamodb_units")
lambda_time = load_benchmark("lambda_time")
INDEX_KEYS = {name: (attribute, ORDER_KEY) for name, attribute in INDEXES.items()}


async def measured_two_agent_run(h: Harness, memory: dict[str, int], model_s: float = 0.0) -> dict[str, Any]:
    """The counts of one background round robin of two agents, as `benchmarks/cost.py` measures it."""
    with units.metering(INDEX_KEYS) as meter, lambda_time.FunctionClock(h.faults.here, meter).running() as clock:
        runner = cost.Runner(h, meter, memory, model_s, clock)
        result = await runner.measure(cost.Scenario("two agents", "round_robin", 2, 3, "background"))
    counts: dict[str, Any] = result["counts"]
    return counts


def history_events(h: Harness) -> list[dict[str, Any]]:
    (execution,) = h.executions()
    events: list[dict[str, Any]] = h.sfn.get_execution_history(executionArn=execution["executionArn"])["events"]
    return events


async def test_a_background_run_is_counted_as_the_harness_ran_it(harness: Harness) -> None:
    h = harness
    memory = cost.deployment().memory_mb
    counts = await measured_two_agent_run(h, memory)
    dispatched = {task: h.faults.count(task) for task in ("plan", "step", "finish")}
    assert counts["lambda_invocations"] == {"api": 1, **dispatched}
    assert sum(counts["lambda_invocations"].values()) == 1 + len(h.faults.durations)
    entered = [e for e in history_events(h) if e["type"].endswith("StateEntered")]
    assert counts["executions"] == 1 and counts["state_transitions"] == len(entered)
    if cost.deployment().workflow_type == "STANDARD":
        # each round: Plan, What next, the Map and its Step; then Plan, What next, Finish, Done
        assert counts["state_transitions"] == 4 * 2 + 4
    for task, seconds in counts["lambda_seconds"].items():
        billed = counts["lambda_gb_seconds"][task]
        rounding = 0.00005 + 0.0005 * memory[task] / 1024  # the report rounds GB-s to 4 places, seconds to 3
        assert billed >= seconds * memory[task] / 1024 - rounding
    assert counts["model_calls"] == 2
    assert counts["dynamodb_write_units"] >= sum(
        n for op, n in counts["dynamodb_requests"].items() if op in ("PutItem", "UpdateItem", "DeleteItem")
    )
    assert counts["dynamodb_read_units"] >= 0.5 * sum(
        n for op, n in counts["dynamodb_requests"].items() if op in ("GetItem", "Query")
    )
    assert (
        sum(counts["dynamodb_units_by_operation"].values())
        == counts["dynamodb_write_units"] + counts["dynamodb_read_units"]
    )
    dollars = cost.bill(cost.Counts(**counts), "STANDARD")
    parts = ("lambda_requests", "lambda_duration", "lambda_streaming", "step_functions", "dynamodb_writes")
    assert abs(dollars["total"] - sum(dollars[p] for p in (*parts, "dynamodb_reads"))) < 1e-4
    assert dollars["step_functions"] == round(counts["state_transitions"] * 0.025, 5)


async def test_a_directly_started_run_is_counted_with_no_execution(direct: Harness) -> None:
    """The template's default start: the Plan function's one invocation is counted (its request and
    its time), and no state transition; the deployment measured is the template's `BackgroundStart`."""
    assert cost.deployment().environment["CHORUS_WORKFLOW_START"] == "invoke"
    h = direct
    counts = await measured_two_agent_run(h, cost.deployment().memory_mb)
    assert counts["lambda_invocations"] == {"api": 1, "plan": 1} and h.faults.count("plan") == 1
    assert counts["lambda_seconds"]["plan"] == round(h.faults.durations[-1][1], 3)
    assert counts["executions"] == 0 and counts["state_transitions"] == 0
    dollars = cost.bill(cost.Counts(**counts), "STANDARD")
    assert dollars["step_functions"] == 0


async def test_an_invocations_time_is_split_into_model_wait_requests_and_its_own_cpu(direct: Harness) -> None:
    """On Lambda the model wait is the same, moto's time is a network round trip a request, and the
    handler's own CPU runs at `memory / 1769` of a vCPU: each part is measured, then priced."""
    memory = {**cost.deployment().memory_mb, "plan": 256}
    counts = await measured_two_agent_run(direct, memory, model_s=0.3)
    waited = counts["lambda_model_wait_seconds"]
    assert waited["plan"] == pytest.approx(2 * 0.3) and waited["api"] == 0
    assert counts["lambda_cpu_seconds"]["plan"] > 0 and counts["lambda_dynamodb_requests"]["plan"] >= 8
    assert sum(counts["lambda_dynamodb_requests"].values()) <= sum(counts["dynamodb_requests"].values())
    billed = counts["lambda_billed_seconds"]["plan"]
    assert counts["lambda_gb_seconds"]["plan"] == pytest.approx(billed / 4, abs=0.001)


def test_lambda_time_stretches_only_the_handlers_cpu_and_prices_requests_as_round_trips() -> None:
    t = lambda_time.FunctionTime(wall_s=2.5, model_wait_s=2.0, moto_s=0.2, requests=10, cpu_s=0.1)
    network = 10 * lambda_time.DYNAMODB_REQUEST_S
    assert t.on_lambda(128) == pytest.approx(2.3 + network + 0.1 * (1769 / 128 - 1))
    assert t.on_lambda(1769) == t.on_lambda(4096) == pytest.approx(2.3 + network), "a whole vCPU or more"
    busy = lambda_time.FunctionTime(wall_s=1.0, model_wait_s=0.9, moto_s=0.5, cpu_s=0.3)
    assert busy.on_lambda(1769) == pytest.approx(1.2), "never less than the wait and the CPU it holds"


def test_a_request_served_while_two_invocations_ran_is_shared_between_them() -> None:
    windows = [lambda_time.Window("step", 0.0, 1.0), lambda_time.Window("step", 0.5, 2.0)]
    served = [units.Served(0.6, 0.8, 0.1), units.Served(1.5, 1.6, 0.05)]
    (step,) = lambda_time.split(windows, served, {"step": 1.2}, {"step": 0.3}).values()
    assert step.requests == pytest.approx(2) and step.moto_s == pytest.approx(0.2 + 0.1)
    assert step.wall_s == pytest.approx(2.5) and step.model_wait_s == 1.2 and step.cpu_s == 0.3


def test_a_request_served_while_its_function_waited_on_the_model_costs_it_no_time() -> None:
    """A heartbeat's read or a log record written while tokens stream overlaps the model wait on AWS
    too; a request between two waits (a step's commit) is the function's own time."""
    windows = [lambda_time.Window("plan", 0.0, 3.0)]
    paces = [lambda_time.Pace("plan", 0.0, 1.0), lambda_time.Pace("step", 1.0, 2.0), lambda_time.Pace("plan", 2.0, 3.0)]
    served = [units.Served(0.2, 0.3, 0.01), units.Served(1.2, 1.3, 0.01), units.Served(2.9, 3.1, 0.01)]
    (plan,) = lambda_time.split(windows, served, {"plan": 2.0}, {"plan": 0.1}, paces).values()
    assert plan.requests == pytest.approx(1 + 0.5), "inside a wait of another function's, and half of one past it"
    assert plan.moto_s == pytest.approx(0.1 + 0.1)


def test_request_units_follow_item_size_indexes_and_transactions() -> None:
    meter = units.Meter(INDEX_KEYS)
    small = {"PK": {"S": "a"}, "SK": {"S": "b"}}
    assert units.item_size(small) == 6, "names and values, in bytes"
    assert meter.item_write(None, small, failed=False) == 1
    listed = {**small, "G1": {"S": "t"}, ORDER_KEY: {"S": "o"}, "body": {"S": "x" * 3000}}
    assert units.item_size(listed) > 3000
    assert meter.item_write(None, listed, failed=False) == 3 + 3, "the table and the by_tenant index"
    moved = {**listed, "G1": {"S": "u"}}
    assert meter.item_write(listed, moved, failed=False) == 3 + 6, "a changed index key: a delete and a put"
    assert meter.item_write(listed, moved, failed=True) == 3, "a failed condition costs the table write only"
    assert units.read_units(4096, consistent=True) == 1 and units.read_units(4097, consistent=False) == 1
    assert units.read_units(0, consistent=False) == 0.5
    assert units.value_size({"N": "12345"}) == 4 and units.value_size({"L": [{"BOOL": True}]}) == 5
    assert json.loads(json.dumps(cost.bill(cost.Counts(), "EXPRESS")))["total"] == 0


async def test_each_plan_commits_the_runs_inputs_only_if_no_plan_did(harness: Harness) -> None:
    """A refused commit still costs its write units: a Plan that restored the input step skips it."""
    h = harness
    original = DynamoDBStore.commit_step
    attempts: list[str] = []

    async def counting(self: DynamoDBStore, step: Any, records: Any) -> None:
        attempts.append(step.step_key)
        await original(self, step, records)

    agents = [await create_agent(h.client, name, tokens=2) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])
    with mock.patch.object(DynamoDBStore, "commit_step", counting):
        await background(h, group["id"])
        await h.settle()
    assert h.faults.count("plan") == 3
    assert attempts.count(INPUT_STEP) == 1 and len(attempts) == 3
