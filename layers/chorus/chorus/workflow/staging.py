"""How the calls of a parallel round reach the run's log in plan order across Lambdas.

In process, `OrderedLanes` lets the first unfinished worker of a supervisor
fan-out stream live while the others buffer in memory. A Step Functions Map
runs each worker in its own Lambda, so the buffer moves to the store: the
`live` call writes the run's log as it goes, and every other call runs
its turn into a `StagingLane` and saves the whole output (events and step
commits, in order) as a *stage*, a small log of its own. `publish` then
copies complete stages into the run, call after call in plan order: the
live Step does it for the calls after its own that are already done, and
the next Plan for the rest. The run's history and stream therefore read
exactly as in process, and only one task writes the run's log at a time.

Exactly once, under any retry:
- a stage is written once, ending with an `end` row; a retried attempt
  that finds an incomplete stage (a crash mid-write) appends a `restart`
  row and writes its output again after it, and readers take the segment
  after the last `restart`;
- publishing is idempotent: steps already committed are skipped by their
  key, and events already copied into the log after the last commit (a
  publisher that crashed between the two) are recognised and not copied
  twice.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import TypeAdapter

from chorus.engine.events import Event
from chorus.errors import Conflict
from chorus.llm.base import Usage
from chorus.runs.progress import usage_dict, usage_of
from chorus.runs.steps import Slot, StepCommit
from chorus.store.base import LOG_END, Store
from chorus.store.records import StepWait

if TYPE_CHECKING:
    from chorus.runs.driver import RunDriver

_STEP_WAIT: TypeAdapter[StepWait] = TypeAdapter(StepWait)
END = '{"end":true}'
RESTART = '{"restart":true}'
READ_BATCH = 1000


def stage_id(run_id: str, round_index: int, call: int) -> str:
    """The stage's log id, beside the run's own log (same tenant, same retention)."""
    return f"{run_id}.stage.{round_index}.{call}"


class StagingLane:
    """A `StepSink` that keeps a turn's output, in order, instead of writing it."""

    def __init__(self) -> None:
        self.ops: list[dict[str, Any]] = []

    def emit(self, event: Event) -> None:
        self.ops.append({"event": dict(event)})

    async def commit(self, step: StepCommit) -> None:
        self.ops.append({"commit": encode_commit(step)})


def encode_commit(commit: StepCommit) -> dict[str, Any]:
    fields = {f.name: getattr(commit, f.name) for f in dataclasses.fields(commit)}
    pending = commit.pending.model_dump(mode="json") if commit.pending is not None else None
    return {**fields, "slot": dataclasses.asdict(commit.slot), "usage": usage_dict(commit.usage), "pending": pending}


def decode_commit(data: dict[str, Any]) -> StepCommit:
    usage: Usage = usage_of(data["usage"])
    pending = _STEP_WAIT.validate_python(data["pending"]) if data.get("pending") is not None else None
    return StepCommit(**{**data, "slot": Slot(**data["slot"]), "usage": usage, "pending": pending})


async def save(store: Store, tenant_id: str, log_id: str, ops: list[dict[str, Any]]) -> None:
    """Write a stage once; a concurrent attempt that completed it first wins."""
    rows = [orjson.dumps(op).decode() for op in ops] + [END]
    for _ in range(5):
        last = await store.last_seq(tenant_id, log_id)
        batch = [RESTART, *rows] if last else rows
        try:
            await store.append_events(tenant_id, log_id, last + 1, batch)
            return
        except Conflict:
            if await load(store, tenant_id, log_id) is not None:
                return
    raise Conflict(f"stage {log_id} is being written by too many attempts at once")


async def load(store: Store, tenant_id: str, log_id: str) -> list[dict[str, Any]] | None:
    """The stage's output, or None while it is missing or incomplete."""
    rows: list[str] = []
    after = 0
    while True:
        batch = await store.read_events(tenant_id, log_id, after, READ_BATCH)
        rows += [data for _, data in batch]
        if len(batch) < READ_BATCH:
            break
        after = batch[-1][0]
    if RESTART in rows:
        rows = rows[len(rows) - rows[::-1].index(RESTART) :]
    if not rows or rows[-1] != END:
        return None
    return [orjson.loads(row) for row in rows[:-1]]


async def publish(driver: RunDriver, round_index: int, calls: int, start: int) -> int:
    """Copy the complete stages of calls `start`, `start + 1`, … of the round into the run, in
    order, stopping at the first call neither committed nor staged; returns how many it copied."""
    tail = await _uncommitted_tail(driver)
    sink = driver.writer
    copied = 0
    for call in range(start, calls):
        if driver.progress.finished_turn(call) is not None:
            continue
        ops = await load(driver.store, driver.run.tenant_id, stage_id(driver.run.id, round_index, call))
        if ops is None:
            break
        for op in _after_commits(ops, len(driver.progress.partial.get(call, []))):
            if "commit" in op:
                await sink.commit(decode_commit(op["commit"]))
                continue
            event = op["event"]
            if tail and driver.log.accepts(event):
                if tail[0] == _unnumbered(event):
                    tail.pop(0)  # copied by a publisher that stopped before committing
                    continue
                tail.clear()
                await driver.mark_abandoned()
            sink.emit(event)
        copied += 1
    return copied


def _after_commits(ops: list[dict[str, Any]], committed: int) -> list[dict[str, Any]]:
    """The ops after the first `committed` step commits (those steps are in the run already)."""
    if committed == 0:
        return ops
    seen = 0
    for i, op in enumerate(ops):
        if "commit" in op:
            seen += 1
            if seen == committed:
                return ops[i + 1 :]
    return []


async def _uncommitted_tail(driver: RunDriver) -> list[dict[str, Any]]:
    """The run's logged events after its last committed step, without their `seq_id`s."""
    committed = driver.progress.log_seq
    count = driver.log.last_seq - committed
    if count <= 0:
        return []
    rows = await driver.store.read_events(driver.run.tenant_id, driver.run.id, committed, count)
    return [_unnumbered(orjson.loads(data)) for _, data in rows if data != LOG_END]


def _unnumbered(event: dict[str, Any]) -> dict[str, Any]:
    """The event without its `seq_id` (the log numbers events; a stage's carry none yet)."""
    return {key: value for key, value in event.items() if key != "seq_id"}
