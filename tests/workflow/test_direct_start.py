"""Direct start (`CHORUS_WORKFLOW_START=invoke`, the template's default): the API invokes the Plan
function asynchronously, which runs the run alone under the run's lease and hands it to an execution
only for what needs the definition. The guarantees are the execution's: the same log and history,
cancel, a dead attempt's output marked abandoned and its turn run again, one writer at a time."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from typing import Any
from unittest import mock

from chorus.workflow.inline import plan_inline
from support import create_agent, create_group
from support.workflow_harness import Harness, background, check_exact, history_of, logged

IDS = re.compile(r"(message|run|step|agent|group)-[0-9a-f-]{36}")


def shape(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events with what differs between two runs of the same conversation (ids, dates, timings) elided."""
    varying = {"date", "created_at", "seq_id", "otid", "ttft_ns", "total_duration_ns", "step_count"}

    def elide(value: Any) -> Any:
        if isinstance(value, str):
            return IDS.sub(r"\1-*", value)
        if isinstance(value, dict):
            return {k: elide(v) for k, v in value.items() if k not in varying}
        if isinstance(value, list):
            return [elide(v) for v in value]
        return value

    return [elide(e) for e in events]


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
    boss = await create_agent(h.client, "Boss", tokens=2)
    workers = [await create_agent(h.client, f"W{i}", tokens=2, delay_s=0.01 * (4 - i)) for i in range(4)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    group = await create_group(h.client, [w["id"] for w in workers], config)
    events = await background(h, group["id"], "split this")
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
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))


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
