"""A run's progress in the store: the records a step commits, and the progress rebuilt from them.

Pure (no I/O): what a worker taking a run over starts from. Steps carry
their place in the plan (`round`, `call`, `calls`, `step`) and the last
step of each turn (`final`) carries what the manager needs of that turn.
Rounds whose every call has a final step are done; the first round that is
not holds the work left (its finished calls are kept, its unfinished ones
continue after their last committed step).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chorus.clock import now_iso
from chorus.engine import identity
from chorus.engine.managers import PendingTool, TurnRecord
from chorus.llm.base import Usage
from chorus.store.records import GroupRecord, MessageRecord, OrchestratedCall, RunRecord, StepRecord


@dataclass(slots=True)
class CommittedProgress:
    """How far a run got, as its committed steps say (what the manager's `RunProgress` is built from)."""

    turns: list[TurnRecord] = field(default_factory=list)
    """Turns of the finished rounds, in round and call order."""
    rounds: int = 0
    """How many rounds are finished."""
    partial: dict[int, list[StepRecord]] = field(default_factory=dict)
    """Committed steps of the unfinished round, by call."""
    usage: Usage = field(default_factory=Usage)
    step_count: int = 0
    log_seq: int = 0
    """The log's last `seq_id` covered by a committed step: later events belong to no committed step."""

    def account(self, usage: Usage) -> None:
        self.usage = self.usage + usage
        self.step_count += 1

    def finished_turn(self, call: int) -> TurnRecord | None:
        """The turn of call `call` of the unfinished round, if it committed its final step."""
        steps = self.partial.get(call)
        return turn_of(steps[-1]) if steps and steps[-1].final else None


def restore(steps: Iterable[StepRecord]) -> CommittedProgress:
    progress = CommittedProgress()
    rounds: dict[int, dict[int, list[StepRecord]]] = {}
    for step in steps:
        progress.log_seq = max(progress.log_seq, step.log_seq)
        if step.agent_id is None:
            continue
        rounds.setdefault(step.round, {}).setdefault(step.call, []).append(step)
        progress.account(usage_of(step.usage))
    for index in sorted(rounds):
        calls = rounds[index]
        size = next(iter(calls.values()))[0].calls
        finals = {c: s[-1] for c, s in calls.items() if s[-1].final}
        if len(finals) < size:
            progress.partial = calls
            break
        progress.turns.extend(turn_of(finals[c]) for c in range(size))
        progress.rounds = index
    return progress


def turn_of(step: StepRecord) -> TurnRecord:
    """The turn a final step closed, as managers see it."""
    pending = step.pending if isinstance(step.pending, OrchestratedCall) else None
    return TurnRecord(
        step.agent_id or "",
        step.stop_reason,
        step.text,
        "choose" if step.purpose == "choose" else "reply" if step.purpose == "reply" else "speak",
        PendingTool(pending.tool_call_id, pending.name, pending.arguments) if pending is not None else None,
        step.reply_to,
        step.error,
    )


def step_records(
    run: RunRecord, group: GroupRecord | None, key: str, agent_id: str | None, messages: list[dict[str, Any]]
) -> tuple[list[MessageRecord], StepRecord]:
    """What committing a step writes: its messages, in history order, and its step record.

    History orders by `position` (commit time, then run, step and index), so a group's
    history reads in commit order across runs; `seq_id` is the log's, not history's."""
    created = now_iso()
    stamp = time.time_ns()
    records = [
        MessageRecord(
            tenant_id=run.tenant_id,
            id=msg["id"],
            created_at=created,
            group_id=group.id if group is not None else None,
            agent_id=agent_id,
            run_id=run.id,
            step_key=key,
            index=i,
            position=f"{stamp:020d}:{run.id}:{key}:{i:04d}",
            message={**msg, "seq_id": None},
        )
        for i, msg in enumerate(messages)
    ]
    step = StepRecord(
        tenant_id=run.tenant_id,
        id=identity.step_id(run.id, key),
        created_at=created,
        run_id=run.id,
        step_key=key,
        agent_id=agent_id,
    )
    return records, step


def slot_of(step_key: str) -> tuple[int, int]:
    """`(round, call)` of a step key (`identity.step_key`)."""
    round_index, call, _ = step_key.split(".")
    return int(round_index), int(call)


def usage_of(usage: dict[str, int]) -> Usage:
    return Usage(
        prompt_tokens=usage.get("prompt_tokens", 0),
        completion_tokens=usage.get("completion_tokens", 0),
        cached_input_tokens=usage.get("cached_input_tokens", 0),
        cache_write_tokens=usage.get("cache_write_tokens", 0),
        reasoning_tokens=usage.get("reasoning_tokens", 0),
    )


def usage_dict(usage: Usage) -> dict[str, int]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "cached_input_tokens": usage.cached_input_tokens,
        "cache_write_tokens": usage.cache_write_tokens,
        "reasoning_tokens": usage.reasoning_tokens,
    }
