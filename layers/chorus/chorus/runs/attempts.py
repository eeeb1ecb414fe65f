"""How many workers died on a run's unfinished step, and what they were doing when they died.

Recovery re-drives a run from its last committed step. A step that itself
kills its worker (a tool that kills the server, a model answer that makes
the process run out of memory) would then kill every worker that adopts the
run, for ever. So each recovery counts the workers that stopped on the same
step: the progress marker is the number of committed steps, so a long run
whose workers restarted for unrelated reasons at different steps is never
failed, while one step that keeps killing its workers is, after
`Settings.max_run_attempts` attempts. The count lives in the run's
`options` (`recovery`), written with the incarnation bump, so every worker
and every restart sees the same count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from chorus.runs.options import RunOptions
from chorus.store.base import LOG_END, Store
from chorus.store.records import RunRecord

RECOVERY = "recovery"
"""The key of the run's `options` holding `{"steps": <committed steps>, "deaths": <workers lost there>}`."""


@dataclass(frozen=True, slots=True)
class Deaths:
    steps: int
    """Committed steps when the last worker died: which step it was attempting."""
    count: int
    """Workers that stopped while attempting that step."""
    log_seq: int = 0
    """The log's last `seq_id` covered by a committed step: what follows is the unfinished step's."""

    def as_option(self) -> dict[str, Any]:
        return {"steps": self.steps, "deaths": self.count}


async def deaths_after(store: Store, run: RunRecord) -> Deaths:
    """The deaths on the run's unfinished step, counting the worker whose lease just expired."""
    committed = await store.list_steps(run.tenant_id, run.id)
    steps, log_seq = len(committed), max((s.log_seq for s in committed), default=0)
    seen = RunOptions.of(run).recovery
    if seen is not None and seen.steps == steps:
        return Deaths(steps, seen.deaths + 1, log_seq)
    return Deaths(steps, 1, log_seq)


@dataclass(frozen=True, slots=True)
class Doing:
    """What the run's log says its dead worker was doing after its last committed step."""

    step_id: str | None = None
    agent: str | None = None
    tool: str | None = None
    message_ids: tuple[str, ...] = ()
    """The messages it streamed of the step it never committed (to be marked abandoned)."""

    def describe(self) -> str:
        parts = [
            f"step {self.step_id}" if self.step_id else "",
            f"of agent {self.agent}" if self.agent else "",
            f"calling tool {self.tool}" if self.tool else "",
        ]
        return " ".join(p for p in parts if p)


async def last_doing(store: Store, run: RunRecord, after_seq: int) -> Doing:
    """The agent, tool and messages of the unfinished step's events (best effort: a worker may
    die before its events were written)."""
    last = await store.last_seq(run.tenant_id, run.id)
    if last <= after_seq:
        return Doing()
    rows = await store.read_events(run.tenant_id, run.id, after_seq, last - after_seq)
    agent = tool = step = None
    ids: list[str] = []
    for _, data in rows:
        if data == LOG_END:
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict):
            continue
        if event.get("message_type") in ("tool_call_message", "approval_request_message"):
            call = event.get("tool_call") or {}
            tool = str(call.get("name")) if isinstance(call, dict) and call.get("name") else tool
        if event.get("name"):
            agent = str(event["name"])
        if event.get("step_id"):
            step = str(event["step_id"])
        if isinstance(event.get("id"), str) and event["id"] not in ids:
            ids.append(event["id"])
    return Doing(step, agent, tool, tuple(ids))


def poisoned_message(deaths: Deaths, doing: str) -> str:
    where = f"; last in {doing}" if doing else ""
    return (
        f"The run was stopped: its worker stopped {deaths.count} times while running the same step{where}. "
        "It is not retried again, so that one run cannot keep taking the service down."
    )
