"""Group managers decide what happens next in a run, and nothing else.

A manager is a pure function of the group's configuration and the run's
progress so far: it returns `RunAgents` (one call, or several to run in
parallel) or `Finish`. No I/O, no clock, no randomness, so the in-process
driver and the Step Functions Plan task call the very same code and get the
very same answer after a crash and a retry.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

CONTINUE_REASONS = frozenset({"end_turn", "max_steps"})
"""A turn that ended this way lets the group go on; any other reason ends the run with it."""


@dataclass(frozen=True, slots=True)
class GroupView:
    group_id: str
    manager_type: str
    agent_ids: tuple[str, ...]
    config: dict[str, Any]


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """What one finished agent turn left behind, as managers need it."""

    agent_id: str
    stop_reason: str
    text: str = ""
    """The agent's assistant text, for managers that read it (dynamic)."""


@dataclass(frozen=True, slots=True)
class RunProgress:
    turns: tuple[TurnRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class AgentCall:
    agent_id: str


@dataclass(frozen=True, slots=True)
class RunAgents:
    calls: tuple[AgentCall, ...]


@dataclass(frozen=True, slots=True)
class Finish:
    stop_reason: str


Decision = RunAgents | Finish


class Manager(Protocol):
    def next(self, group: GroupView, progress: RunProgress) -> Decision: ...


def stop_early(progress: RunProgress) -> Finish | None:
    """End the run when the last turn ended in a way the group cannot continue from."""
    if progress.turns and progress.turns[-1].stop_reason not in CONTINUE_REASONS:
        return Finish(progress.turns[-1].stop_reason)
    return None
