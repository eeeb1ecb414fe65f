"""The approvals flow at the edges of a run: the answers a request brings, the pause a group records.

A turn whose tool calls need a human stops the group's run with
`requires_approval` and records the calls in the group (`pending_approval`).
The next request to the group must answer exactly those calls; its run
resumes the paused turn (`TurnRunner` with `Answers`) and then the group's
plan. The group's record is cleared only once the answers are committed, so
a resumption that dies before that leaves the approval pending, to answer again.
"""

from __future__ import annotations

from typing import Any

from chorus.errors import BadRequest, Conflict
from chorus.runs.options import RunOptions
from chorus.runs.steps import StepCommit
from chorus.schemas.requests import ApprovalCreate, MessageCreate
from chorus.store.base import Store
from chorus.store.records import AwaitingApproval, GroupRecord, PendingApproval, RunRecord


def approval_answers(group: GroupRecord, inputs: list[MessageCreate | ApprovalCreate]) -> list[dict[str, Any]]:
    """The human's answers to the group's pending tool calls, checked (400/409 before any byte).

    A group whose run paused for approval takes approvals only (409 for a normal message);
    approvals must answer exactly the pending calls (400 naming the unknown or missing ids)."""
    approvals = [m for m in inputs if isinstance(m, ApprovalCreate)]
    pending = group.pending_approval
    owner = "agent" if group.solo_agent_id else "group"
    if not approvals:
        if pending is not None:
            raise Conflict(
                f"Please approve or deny the pending request before continuing: the {owner}'s run "
                f"{pending.run_id} waits on tool calls {[c.tool_call_id for c in pending.tool_calls]}.",
                run_id=pending.run_id,
            )
        return []
    if pending is None:
        where = "for this agent" if group.solo_agent_id else "in this group"
        raise BadRequest(f"No tool call is currently awaiting approval {where}.")
    if len(approvals) != len(inputs):
        raise BadRequest("Send approvals on their own, without other messages.")
    answers: list[dict[str, Any]] = []
    for item in approvals:
        if item.approvals:
            answers.extend(a.model_dump(mode="json") for a in item.approvals)
        elif item.approval_request_id is not None and item.approve is not None:
            answers.append(
                {
                    "type": "approval",
                    "tool_call_id": item.approval_request_id,
                    "approve": item.approve,
                    "reason": item.reason,
                }
            )
        else:
            raise BadRequest("An approval needs `approvals`, or `approve` with `approval_request_id`.")
    expected = {c.tool_call_id for c in pending.tool_calls}
    given = [a["tool_call_id"] for a in answers]
    if set(given) != expected or len(given) != len(expected):
        raise BadRequest(
            f"Invalid tool call IDs: {sorted(set(given) - expected) or 'none'} unknown, "
            f"{sorted(expected - set(given)) or 'none'} unanswered; pending: {sorted(expected)}."
        )
    return answers


async def track_pending_approval(store: Store, group: GroupRecord, run: RunRecord, commit: StepCommit) -> None:
    """Keep the group's `pending_approval` true to history: set when a turn stops for a human,
    cleared once a resumed turn's answers are committed (its first step)."""
    waits = commit.pending.approval if isinstance(commit.pending, AwaitingApproval) else None
    continues = RunOptions.of(run).continues
    if not waits and not (continues is not None and commit.step == 1):
        return
    current = await store.get_group(run.tenant_id, group.id)
    if waits:
        pending = PendingApproval(
            run_id=run.id, agent_id=commit.agent_id, tool_calls=waits, round=commit.slot.round, call=commit.slot.call
        )
        await store.put_group(current.model_copy(update={"pending_approval": pending}))
    elif (
        continues is not None
        and current.pending_approval is not None
        and current.pending_approval.run_id == continues.run_id
    ):
        await store.put_group(current.model_copy(update={"pending_approval": None}))
