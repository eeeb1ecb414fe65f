"""Inline turns (`CHORUS_WORKFLOW_INLINE_S`, on in the template): Plan runs one-call rounds and Finish
itself; parallel rounds, retryable model errors and turns past the budget still go through the Map.
The guarantees are the Map's: gapless log, history exactly once, cancel, a crashed worker's attempt
marked abandoned and its turn run again."""

from __future__ import annotations

import asyncio
from collections import Counter
from unittest import mock

from chorus.workflow.inline import plan_inline
from support import create_agent, create_group
from support.workflow_harness import (
    Harness,
    background,
    check_exact,
    crash_mid_turn,
    history_of,
    logged,
    supervisor_of_four,
    talking,
)


def entered(h: Harness, run_id: str) -> list[str]:
    arn = next(e["executionArn"] for e in h.executions() if e["name"] == run_id)
    events = h.sfn.get_execution_history(executionArn=arn)["events"]
    return [e["stateEnteredEventDetails"]["name"] for e in events if e["type"].endswith("StateEntered")]


async def test_a_round_robin_run_is_one_plan_and_three_transitions(inline: Harness) -> None:
    h = inline
    agents = [await create_agent(h.client, name, tokens=3) for name in ("Ada", "Bob", "Cy")]
    group = await create_group(h.client, [a["id"] for a in agents])
    events = await background(h, group["id"], stream_tokens=True)
    run_id = events[0]["run_id"]
    await h.settle()
    assert [h.faults.count(task) for task in ("plan", "step", "finish")] == [1, 0, 0]
    assert entered(h, run_id) == ["Plan", "What next", "Done"]
    names = [e["name"] for e in events if e["message_type"] == "assistant_message"]
    assert list(dict.fromkeys(names)) == ["Ada", "Bob", "Cy"]
    assert events[-1]["message_type"] == "usage_statistics"
    check_exact(await logged(h, run_id), await history_of(h, group["id"]))
    assert (await h.client.get(f"/v1/runs/{run_id}")).json()["status"] == "completed"


async def test_a_supervisor_fan_out_still_runs_its_workers_in_the_map(inline: Harness) -> None:
    h = inline
    group_id = await supervisor_of_four(h)
    events = await background(h, group_id, "split this")
    await h.settle()
    speakers = [e["name"] for e in events if e["message_type"] == "assistant_message"]
    assert speakers == ["W0", "W1", "W2", "W3", "Boss"]
    steps = [event for task, event in h.faults.calls if task == "step"]
    assert sorted(s["call"] for s in steps) == [0, 1, 2, 3] and {s["calls"] for s in steps} == {4}
    assert h.faults.count("plan") == 2 and h.faults.count("finish") == 0
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group_id))


async def test_a_retryable_model_error_in_an_inline_turn_goes_to_the_map_and_its_retries(inline: Harness) -> None:
    h = inline
    ada = await create_agent(h.client, "Ada", error="rate_limit")
    group = await create_group(h.client, [ada["id"]])
    events = await background(h, group["id"])
    assert [e["message_type"] for e in events] == ["stop_reason", "error_message"]
    assert events[0]["stop_reason"] == "llm_api_error"
    await h.settle()
    assert h.faults.count("step") == 5, "the Map's Step: the first attempt and the definition's 4 retries"
    assert h.faults.count("finish") == 1
    run = (await h.client.get(f"/v1/runs/{events[1]['run_id']}")).json()
    assert run["status"] == "failed" and run["stop_reason"] == "llm_api_error"


async def test_a_plan_dying_mid_turn_is_retried_and_the_dead_attempt_is_marked_abandoned(inline: Harness) -> None:
    h = inline
    group_id, events = await crash_mid_turn(h, "plan")
    assert h.faults.errors == [("plan", "Runtime.ExitError")]
    await h.settle()
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group_id))
    assert [m.get("name") for m in (await history_of(h, group_id))[1:]] == ["Ada", "Bob"]


async def test_cancel_stops_an_inline_turn_and_the_run_ends_cancelled_once(inline: Harness) -> None:
    h = inline
    group_id, run_id = await talking(h)
    assert (await h.client.post(f"/v1/groups/{group_id}/messages/cancel", json={})).status_code == 200
    await h.settle()
    await asyncio.sleep(0.3)  # a Plan still running its turn sees the flag within its heartbeat
    rows = await h.store.read_events("default", run_id, 0, 100_000)
    assert rows[-1][1] == "[DONE]" and Counter(d for _, d in rows)["[DONE]"] == 1
    run = (await h.client.get(f"/v1/runs/{run_id}")).json()
    assert run["status"] == "cancelled" and run["stop_reason"] == "cancelled"


async def test_turns_past_the_budget_go_to_the_map(inline: Harness) -> None:
    """The budget is checked before each turn: with a clock past it, the first turn is the Map's."""
    h = inline
    agents = [await create_agent(h.client, name, tokens=2) for name in ("Ada", "Bob")]
    group = await create_group(h.client, [a["id"] for a in agents])
    ticks = iter(range(0, 10_000, 400))
    late = mock.patch("chorus.workflow.handlers.plan_inline", lambda w, raw, budget_s: plan_inline(
        w, raw, budget_s, clock=lambda: float(next(ticks))))  # fmt: skip
    with late:
        events = await background(h, group["id"])
    await h.settle()
    assert [e["name"] for e in events if e["message_type"] == "assistant_message"] == ["Ada", "Bob"]
    assert h.faults.count("step") == 2 and h.faults.count("finish") == 0
    check_exact(await logged(h, events[0]["run_id"]), await history_of(h, group["id"]))
