"""Group managers decide what happens next in a run, and nothing else.

A manager is a pure function of the group's configuration and the run's
progress so far: it returns `RunAgents` (one call, or several to run in
parallel) or `EndRun`. No I/O, no clock, no randomness, so the in-process
driver and the Step Functions Plan task call the very same code and get the
very same answer after a crash and a retry.

Vocabulary. A *round* is one `RunAgents` decision; each of its calls is one
*turn* of one agent, which may take several model *steps* (tool calls and
their returns) before it ends. A turn ends by answering (`end_turn`), by
running out of steps (`max_steps`), by failing (a failure stop reason), or
by calling a tool only the orchestrator can run (`AWAITING_TOOL`, e.g. the
supervisor's broadcast): the manager then plans that tool's work as the
next round and hands its result back to the agent in a later turn.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from chorus.engine.managers.config import ManagerSettings
from chorus.vocabulary import CONTINUE_STOP_REASONS

AWAITING_TOOL = "awaiting_tool"
"""A turn that stopped at an orchestrated tool call; never a run's stop reason."""

Purpose = Literal["speak", "choose", "reply"]
"""Why an agent takes a turn: to speak in the group, to choose the next speaker (dynamic
manager), or to reply to a broadcast (supervisor workers)."""


@dataclass(frozen=True, slots=True)
class GroupView:
    """What managers read of a group: its members and its validated `manager_config`."""

    group_id: str
    agent_ids: tuple[str, ...]
    config: ManagerSettings
    names: Mapping[str, str] = field(default_factory=dict)
    """Agent id → name, for managers that address agents by name (dynamic, supervisor replies)."""

    @property
    def manager_type(self) -> str:
        return self.config.manager_type

    @property
    def manager_agent_id(self) -> str | None:
        return self.config.manager_agent_id

    def members_besides_manager(self) -> tuple[str, ...]:
        manager = self.manager_agent_id
        return tuple(a for a in self.agent_ids if a != manager)

    def name_of(self, agent_id: str) -> str:
        return self.names.get(agent_id, agent_id)


@dataclass(frozen=True, slots=True)
class PendingTool:
    """An orchestrated tool call a turn stopped at."""

    tool_call_id: str
    name: str
    arguments: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class TurnRecord:
    """What one finished agent turn left behind, as managers need it."""

    agent_id: str
    stop_reason: str
    text: str = ""
    """The turn's assistant text, for managers that read it (dynamic)."""
    purpose: Purpose = "speak"
    pending: PendingTool | None = None
    """Set when the turn stopped at an orchestrated tool (`stop_reason == AWAITING_TOOL`)."""
    reply_to: str | None = None
    """The broadcast (tool call id) this turn answered."""
    error: str | None = None
    """Why the turn failed, for turns whose failure does not end the run (broadcast replies)."""


@dataclass(frozen=True, slots=True)
class RunProgress:
    turns: tuple[TurnRecord, ...] = ()
    """Every finished turn of the run, in round and call order."""
    turn_number: int = 1
    """Which of the group's runs this is (1-based): sleeptime agents run every N of them."""
    backlog: int = 0
    """Group history messages the sleeptime agents have not processed yet (voice sleeptime)."""
    max_steps: int = 50
    """The request's bound on steps per agent turn; also bounds supervisor broadcast rounds."""


@dataclass(frozen=True, slots=True)
class ToolReturn:
    """The result of an orchestrated tool, handed back to the agent that called it."""

    tool_call_id: str
    name: str
    content: str
    status: Literal["success", "error"] = "success"


@dataclass(frozen=True, slots=True)
class AgentCall:
    """One agent turn to run, and how that agent sees the group for it."""

    agent_id: str
    purpose: Purpose = "speak"
    tools: tuple[str, ...] = ()
    """Built-in tools offered to the agent for this turn."""
    instruction: str | None = None
    """A last user message for this turn only (not kept in history), e.g. the dynamic manager's question."""
    tool_return: ToolReturn | None = None
    """Resume the agent after an orchestrated tool: this return opens the turn."""
    reply_to: str | None = None
    """The broadcast this turn answers."""
    hidden_senders: tuple[str, ...] = ()
    """Agents whose messages this agent does not see (the dynamic manager's choices)."""
    context_limit: int | None = None
    """See only the newest N messages of history (the voice agent's message buffer)."""


@dataclass(frozen=True, slots=True)
class RunAgents:
    calls: tuple[AgentCall, ...]
    """One call, or several run in parallel (their output streamed in this order)."""


@dataclass(frozen=True, slots=True)
class EndRun:
    """The manager's decision to end the run (not the model stream's `Finish`, nor the workflow's Finish task)."""

    stop_reason: str
    background: tuple[str, ...] = ()
    """Agents to run as their own background runs over the group's new messages (sleeptime)."""
    keep_recent: int | None = None
    """With `background`: how many newest messages stay unprocessed (voice sleeptime's buffer)."""


Decision = RunAgents | EndRun


class Manager(Protocol):
    def next(self, group: GroupView, progress: RunProgress) -> Decision: ...


def stop_early(progress: RunProgress) -> EndRun | None:
    """End the run when the last turn ended in a way the group cannot continue from."""
    if progress.turns:
        last = progress.turns[-1]
        if last.stop_reason not in CONTINUE_STOP_REASONS and last.stop_reason != AWAITING_TOOL:
            return EndRun(last.stop_reason)
    return None


def last_stop(progress: RunProgress) -> str:
    return progress.turns[-1].stop_reason if progress.turns else "end_turn"
