"""One agent step as a pure fold over model events.

`AgentStep.feed(event)` returns the stream events to emit now; `finish()`
closes the step and returns the rest. The driver pumps a model stream
through it, in process and in the Step Functions Step task alike, so both
produce identical events. With `stream_tokens`, each text/reasoning delta is
a chunk sharing its message's `id` (clients concatenate by id) and complete
messages are not re-sent; without it, each message is emitted once, whole.
Tool calls are emitted whole when the model's answer ends (their arguments
arrive in pieces that mean nothing alone), and `append` adds the messages the
step writes after the model call, such as tool returns, under the step's ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chorus.engine import events, identity
from chorus.engine.events import Event
from chorus.engine.tools import tool_arguments
from chorus.vocabulary import Finish, ModelEvent, ReasoningDelta, TextDelta, ToolCallDelta, ToolCallRequest, Usage

_FIELD = {"assistant_message": "content", "reasoning_message": "reasoning"}


@dataclass(frozen=True, slots=True)
class StepContext:
    run_id: str
    step_key: str
    agent_id: str
    agent_name: str
    date: str
    stream_tokens: bool
    incarnation: int = 1


@dataclass(slots=True)
class StepOutcome:
    messages: list[Event]
    """The step's complete messages, as history stores them."""
    usage: Usage
    finish_reason: str
    chunks: int = 0
    """Deltas received, a measure of how far the model got."""
    tool_calls: list[ToolCallRequest] = field(default_factory=list)
    """The calls the model made, in order, each announced in `messages` (as a call, or for approval)."""
    held: list[ToolCallRequest] = field(default_factory=list)
    """The calls waiting for a human's approval (in the `approval_request_message`)."""
    spoken: list[ToolCallRequest] = field(default_factory=list)
    """The calls that were speech (a legacy agent's `send_message`), sent as `assistant_message`s."""


@dataclass(slots=True)
class _Open:
    kind: str
    header: Event
    parts: list[str] = field(default_factory=list)


class AgentStep:
    def __init__(self, ctx: StepContext) -> None:
        self.ctx = ctx
        self.step_id = identity.step_id(ctx.run_id, ctx.step_key)
        self._done: list[Event] = []
        self._open: _Open | None = None
        self._usage = Usage()
        self._finish = "end_turn"
        self._chunks = 0
        self._calls: dict[int, list[str]] = {}
        """Tool calls being streamed, by index: `[id, name, arguments so far]`."""
        self._emitted: list[str] = []

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
        elif isinstance(event, ToolCallDelta):
            self._chunks += 1
            call = self._calls.setdefault(event.index, ["", "", ""])
            call[0] = call[0] or event.id or ""
            call[1] = call[1] or event.name or ""
            call[2] += event.arguments
        return []

    def finish(
        self, needs_approval: Callable[[str], bool] | None = None, speech: tuple[str, str] | None = None
    ) -> tuple[list[Event], StepOutcome]:
        """Close the model's answer: the events still to emit, and the outcome to commit.

        Calls for which `needs_approval(name)` holds are not announced as `tool_call_message`s
        but together as one `approval_request_message` (Letta's shape: `tool_call` is the first,
        `tool_calls` all of them), after the calls that may run at once. A call of the tool a
        legacy agent speaks through (`speech`: its name and argument) becomes the
        `assistant_message` it means, as Letta does with `use_assistant_message`."""
        emitted = self._close()
        requests, held, spoken = [], [], []
        for index in sorted(self._calls):
            call_id, name, arguments = self._calls[index]
            call_id = call_id or identity.tool_call_id(self.ctx.run_id, self.ctx.step_key, index)
            request = ToolCallRequest(call_id, name, arguments)
            requests.append(request)
            said = speech_of(arguments, speech[1]) if speech is not None and name == speech[0] else None
            if said is not None:
                spoken.append(request)
                emitted.append(self.append("assistant_message", content=said))
                continue
            if needs_approval is not None and needs_approval(name):
                held.append(request)
                continue
            tool_call = {"name": name, "arguments": arguments, "tool_call_id": call_id}
            emitted.append(self.append("tool_call_message", tool_call=tool_call, tool_calls=[tool_call]))
        if held:
            calls = [{"name": r.name, "arguments": r.arguments, "tool_call_id": r.id} for r in held]
            emitted.append(self.append("approval_request_message", tool_call=calls[0], tool_calls=calls))
        outcome = StepOutcome(self._done, self._usage, self._finish, self._chunks, requests, held, spoken)
        return emitted, outcome

    def append(self, kind: str, **fields: Any) -> Event:
        """Add a whole message to the step (a tool call or return) and return it, to emit."""
        message = self._header(kind, {})
        message.update(fields)
        self._done.append(message)
        return message

    @property
    def messages(self) -> list[Event]:
        """The step's complete messages so far."""
        return self._done

    def emitted_ids(self) -> list[str]:
        """Ids of the messages this step has sent so far (whole or as chunks), oldest first."""
        return list(self._emitted)

    def _delta(self, kind: str, text: str, extra: dict[str, Any]) -> list[Event]:
        self._chunks += 1
        out: list[Event] = []
        current = self._open
        if current is None or current.kind != kind:
            out = self._close()
            current = self._open = _Open(kind, self._header(kind, extra))
            if self.ctx.stream_tokens:
                self._emitted.append(current.header["id"])
        if extra.get("signature"):
            current.header["signature"] = extra["signature"]
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
        if kind not in _FIELD:
            self._emitted.append(mid)
        return header

    def _close(self) -> list[Event]:
        current, self._open = self._open, None
        if current is None:
            return []
        whole = dict(current.header)
        whole[_FIELD[current.kind]] = "".join(current.parts)
        self._done.append(whole)
        if self.ctx.stream_tokens:
            return []
        self._emitted.append(whole["id"])
        return [whole]


def speech_of(arguments: str, kwarg: str) -> str | None:
    """The message a speech call carries, or None if its arguments do not hold one."""
    parsed = tool_arguments(arguments)
    value = parsed.get(kwarg) if parsed is not None else None
    return value if isinstance(value, str) else None
