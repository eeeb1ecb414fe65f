"""`events/workflow-*.json` fed to the real task handlers, walking the run as the state machine would.

The files are what the Plan, Step and Finish functions receive; feeding them
by hand (no state machine) pins the JSON contract between the definition and
the handlers, and shows what `sam local invoke PlanFunction -e …` would do.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from chorus.clock import now_iso
from chorus.store.records import RunRecord
from chorus.workflow.state import StepInput, WorkflowInput, WorkflowState
from support import create_agent, create_group
from support.workflow_harness import ROOT, Harness

EVENTS = ROOT / "events"


def event(name: str) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return body


def invoker(h: Harness, task: str) -> Any:
    """The task's Lambda handler, invoked on a thread of its own as the runtime would (it runs its own loop)."""

    async def invoke(body: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = await asyncio.to_thread(h.handlers[task], body, None)
        return result

    return invoke


async def prepared_run(h: Harness, agents: int = 2) -> RunRecord:
    """The run the event files name, stored as the API stores a background send (group claimed)."""
    ids = [(await create_agent(h.client, f"A{i}", tokens=2))["id"] for i in range(agents)]
    group = await create_group(h.client, ids)
    run_id = event("workflow-plan.json")["run_id"]
    run = RunRecord(
        tenant_id="default",
        id=run_id,
        created_at=now_iso(),
        agent_id=ids[0],
        group_id=group["id"],
        background=True,
        metadata={"run_type": "send_message_streaming", "group_id": group["id"]},
        inputs=[{"role": "user", "content": "hello"}],
        options={"stream_tokens": False, "max_steps": 10},
    )
    await h.store.put_run(run)
    assert await h.store.claim_group("default", group["id"], run_id) is None
    return run


def test_the_plan_file_is_an_execution_input() -> None:
    assert WorkflowInput.model_validate(event("workflow-plan.json")).model_dump() == event("workflow-plan.json")


@pytest.mark.parametrize("name", ["workflow-finish.json", "workflow-finish-caught.json"])
def test_state_files_are_workflow_states(name: str) -> None:
    state = WorkflowState.model_validate(event(name))
    assert state.out().keys() <= event(name).keys()


def test_the_step_file_is_a_step_input_plan_would_emit() -> None:
    assert StepInput.model_validate(event("workflow-step.json")).model_dump() == event("workflow-step.json")
    assert event("workflow-finish-caught.json")["steps"] == [event("workflow-step.json")]


async def test_the_event_files_walk_a_run_from_plan_to_finish(harness: Harness) -> None:
    h = harness
    await prepared_run(h)
    plan, step, finish = (invoker(h, t) for t in ("plan", "step", "finish"))
    state = await plan(event("workflow-plan.json"))
    assert state["action"] == "steps" and state["steps"] == [event("workflow-step.json")]
    assert await step(state["steps"][0]) == {"call": 0, "outcome": "done"}
    assert await step(state["steps"][0]) == {"call": 0, "outcome": "skipped"}, "a retried Step commits nothing twice"
    state = await plan(state)
    assert state["action"] == "steps" and state["round"] == 2
    await step(state["steps"][0])
    state = await plan(state)
    assert state == {**event("workflow-finish.json"), "max_concurrency": 4}  # CHORUS_FANOUT_CONCURRENCY here
    ended = await finish(state)
    assert ended == {"run_id": state["run_id"], "status": "completed", "stop_reason": "end_turn"}
    assert await finish(state) == ended, "Finish again changes nothing"
    rows = await h.store.read_events("default", state["run_id"], 0, 100)
    kinds = [json.loads(d)["message_type"] for _, d in rows[:-1]]
    assert kinds == ["assistant_message", "assistant_message", "stop_reason", "usage_statistics"]
    assert rows[-1][1] == "[DONE]"


async def test_the_caught_error_file_ends_the_run_with_the_models_stop_reason(harness: Harness) -> None:
    h = harness
    run = await prepared_run(h, agents=1)
    ended = await invoker(h, "finish")(event("workflow-finish-caught.json"))
    assert ended == {"run_id": run.id, "status": "failed", "stop_reason": "llm_api_error"}
    rows = await h.store.read_events("default", run.id, 0, 100)
    error = json.loads(rows[-2][1])
    assert error["message_type"] == "error_message" and error["error_type"] == "llm_error"
    assert "upstream 500" in error["message"]
    stored = await h.store.get_run("default", run.id)
    assert stored.is_terminal and await h.store.claim_group("default", run.group_id or "", "run-next") is None


def test_every_file_in_events_is_covered() -> None:
    workflow = sorted(p.name for p in Path(EVENTS).glob("workflow-*.json"))
    assert workflow == [
        "workflow-finish-caught.json",
        "workflow-finish.json",
        "workflow-plan.json",
        "workflow-step.json",
    ]
