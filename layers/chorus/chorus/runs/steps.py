"""What a turn writes, and the port it writes through.

A turn produces two things as it goes: stream events, each emitted the moment the
model yields it (so streaming latency is the model's), and one `StepCommit` per model
step. The turn runner hands both to the `StepSink` it is given and never reaches back
into whoever drives it: the run's `StepWriter` (log and history), a parallel round's
ordered lane, or a workflow Step's staging lane each implement the port.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from chorus.engine.events import Event
from chorus.llm.base import Usage
from chorus.store.records import StepWait


@dataclass(frozen=True, slots=True)
class Slot:
    """Where a turn sits in the run's plan: call `call` of `calls` in decision `round`."""

    round: int
    call: int = 0
    calls: int = 1


@dataclass(slots=True)
class StepCommit:
    """What one step writes: its messages and the record the run's progress is rebuilt from."""

    key: str
    agent_id: str
    slot: Slot
    step: int
    messages: list[dict[str, Any]]
    usage: Usage
    final: bool
    stop_reason: str
    text: str
    purpose: str
    pending: StepWait | None = None
    reply_to: str | None = None
    error: str | None = None


class StepSink(Protocol):
    """Where a turn's output goes: events as they arrive, then each step's commit."""

    def emit(self, event: Event) -> None: ...

    async def commit(self, step: StepCommit) -> None: ...
