"""Waits and approvals are typed records now; what the stores hold of them keeps its old JSON shape.

SQLite rows and DynamoDB items written before the records were typed must still load, and
what is written now must read as before (both adapters store `model_dump_json()`).
"""

from __future__ import annotations

from typing import Any

import orjson

from chorus.runs.options import RunOptions
from chorus.runs.progress import turn_of
from chorus.store.records import AwaitingApproval, GroupRecord, OrchestratedCall, RunRecord, StepRecord

HELD = {"tool_call_id": "call-1", "name": "delete_file", "arguments": '{"path": "a.txt"}'}
PENDING_APPROVAL = {"run_id": "run-1", "agent_id": "agent-1", "tool_calls": [HELD], "round": 2, "call": 0}
BROADCAST = {"tool_call_id": "call-2", "name": "broadcast", "arguments": {"message": "hi"}}
BASE = {"tenant_id": "t1", "created_at": "2026-01-01T00:00:00.000000+00:00"}


def step_json(pending: dict[str, Any] | None) -> bytes:
    old = {**BASE, "id": "step-1", "run_id": "run-1", "step_key": "00001.00000.00001", "agent_id": "agent-1"}
    return orjson.dumps({**old, "pending": pending, "final": True, "stop_reason": "requires_approval"})


def test_an_old_step_waiting_on_approval_loads_typed_and_writes_the_same_shape() -> None:
    step = StepRecord.model_validate_json(step_json({"approval": [HELD]}))
    assert isinstance(step.pending, AwaitingApproval)
    assert step.pending.approval[0].arguments == HELD["arguments"]
    assert orjson.loads(step.model_dump_json())["pending"] == {"approval": [HELD]}
    assert turn_of(step).pending is None, "a wait for approval is no orchestrated call"


def test_an_old_step_stopped_at_an_orchestrated_call_loads_typed_and_writes_the_same_shape() -> None:
    step = StepRecord.model_validate_json(step_json(BROADCAST))
    assert isinstance(step.pending, OrchestratedCall)
    assert orjson.loads(step.model_dump_json())["pending"] == BROADCAST
    turn = turn_of(step)
    assert turn.pending is not None and turn.pending.arguments == {"message": "hi"}


def test_an_old_step_waiting_on_nothing_loads() -> None:
    assert StepRecord.model_validate_json(step_json(None)).pending is None


def test_an_old_group_with_a_pending_approval_loads_typed_and_writes_the_same_shape() -> None:
    old = {**BASE, "id": "group-1", "agent_ids": ["agent-1"], "updated_at": BASE["created_at"]}
    raw = orjson.dumps({**old, "manager_config": {"manager_type": "round_robin"}, "pending_approval": PENDING_APPROVAL})
    group = GroupRecord.model_validate_json(raw)
    assert group.pending_approval is not None and group.pending_approval.tool_calls[0].name == "delete_file"
    assert orjson.loads(group.model_dump_json())["pending_approval"] == PENDING_APPROVAL


def test_an_old_run_resuming_a_paused_turn_reads_what_it_continues() -> None:
    answer = {"type": "approval", "tool_call_id": "call-1", "approve": True, "reason": None}
    options = {"stream_tokens": True, "max_steps": 5, "approvals": [answer], "continues": PENDING_APPROVAL}
    run = RunRecord.model_validate_json(
        orjson.dumps({**BASE, "id": "run-2", "agent_id": "agent-1", "options": options})
    )
    options_read = RunOptions.of(run)
    continues = options_read.continues
    assert continues is not None and continues.run_id == "run-1" and continues.round == 2
    assert continues.tool_calls[0].tool_call_id == "call-1"
    assert [a.model_dump(mode="json") for a in options_read.approvals] == [answer]
