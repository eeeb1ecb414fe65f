"""One agent step as a pure fold over model events.

`AgentTurn.feed(event)` returns the stream events to emit now; `finish()`
closes the step and returns the rest. The driver pumps a model stream
through it; the Step Functions Step task will pump the same way, so both
produce identical events. With `stream_tokens`, each text/reasoning delta is
a chunk sharing its message's `id` (clients concatenate by id) and complete
messages are not re-sent; without it, each message is emitted once, whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from chorus.engine import events, identity
from chorus.engine.events import Event
from chorus.llm.base import Finish, ModelEvent, ReasoningDelta, TextDelta, ToolCallDelta, Usage

_FIELD = {"assistant_message": "content", "reasoning_message": "reasoning"}


@dataclass(frozen=True, slots=True)
class TurnContext:
    run_id: str
    step_key: str
    agent_id: str
    agent_name: str
    date: str
    stream_tokens: bool
    incarnation: int = 1


@dataclass(slots=True)
class TurnOutcome:
    messages: list[Event]
    """The step's complete messages, as history stores them."""
    usage: Usage
    finish_reason: str
    chunks: int = 0
    """Deltas received, a measure of how far the model got."""


@dataclass(slots=True)
class _Open:
    kind: str
    header: Event
    parts: list[str] = field(default_factory=list)


class AgentTurn:
    def __init__(self, ctx: TurnContext) -> None:
        self.ctx = ctx
        self.step_id = identity.step_id(ctx.run_id, ctx.step_key)
        self._done: list[Event] = []
        self._open: _Open | None = None
        self._usage = Usage()
        self._finish = "end_turn"
        self._chunks = 0

    def feed(self, event: ModelEvent) -> list[Event]:
        if isinstance(event, TextDelta):
            return self._delta("assistant_message", event.text, {})
        if isinstance(event, ReasoningDelta):
            extra = {"source": "reasoner_model", "signature": event.signature}
            return self._delta("reasoning_message", event.text, extra)
        if isinstance(event, Usage):
            self._usage = self._usage + event
        elif isinstance(event, Finish):
            self._finish = event.reason
        elif isinstance(event, ToolCallDelta):  # pragma: no cover - tools arrive with issue 5
            raise NotImplementedError("tool calls are not supported by this build")
        return []

    def finish(self) -> tuple[list[Event], TurnOutcome]:
        """Close the step: the events still to emit, and the outcome to commit."""
        emitted = self._close()
        outcome = TurnOutcome(list(self._done), self._usage, self._finish, self._chunks)
        return emitted, outcome

    def _delta(self, kind: str, text: str, extra: dict[str, Any]) -> list[Event]:
        self._chunks += 1
        out: list[Event] = []
        current = self._open
        if current is None or current.kind != kind:
            out = self._close()
            current = self._open = _Open(kind, self._header(kind, extra))
        current.parts.append(text)
        if self.ctx.stream_tokens:
            chunk = dict(current.header)
            chunk[_FIELD[kind]] = text
            out.append(chunk)
        return out

    def _header(self, kind: str, extra: dict[str, Any]) -> Event:
        index = len(self._done)
        mid = identity.message_id(self.ctx.run_id, self.ctx.step_key, index, self.ctx.incarnation)
        header = events.message(
            kind,
            id=mid,
            date=self.ctx.date,
            otid=identity.otid(mid),
            run_id=self.ctx.run_id,
            step_id=self.step_id,
            name=self.ctx.agent_name,
            sender_id=self.ctx.agent_id,
        )
        header.update(extra)
        return header

    def _close(self) -> list[Event]:
        current, self._open = self._open, None
        if current is None:
            return []
        whole = dict(current.header)
        whole[_FIELD[current.kind]] = "".join(current.parts)
        self._done.append(whole)
        return [] if self.ctx.stream_tokens else [whole]
