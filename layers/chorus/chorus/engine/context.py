"""What an agent reads: the group's history rendered from that agent's side.

Pure. Letta's round robin forwards each speaker's assistant messages to the
others as messages carrying the speaker's `name`/`sender_id`; here the store
keeps one history per group and every agent's context is derived from it, so
each speaker sees exactly what it has not said itself, with no per-agent copies
to keep in sync. Others' words arrive as `user` messages prefixed with the
speaker's name, which every provider accepts (Anthropic rejects mid-chat
`system` turns).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, NamedTuple

import orjson

from chorus.engine.tools import BROADCAST, SPEECH_TOOL
from chorus.schemas.content import content_text
from chorus.schemas.requests import MessageCreate
from chorus.vocabulary import ModelMessage, ModelRequest, Reasoning, ToolCallRequest, ToolSpec


def group_system_prompt(system: str, *, participants: int, description: str) -> str:
    """The agent's own system prompt plus the group-chat framing Letta adds to participants."""
    return (
        f"{system}\n\n%%% GROUP CHAT CONTEXT %%% You are speaking in a group chat with "
        f"{participants - 1} other participants. Group description: {description or '(none)'}. "
        "Others can see your messages; build on their contributions, stay on topic, be concise, "
        "and keep your own character. %%% END GROUP CHAT CONTEXT %%%"
    )


UNANSWERED = "No result: this call was not carried out."


def message_text(content: Any) -> str:
    """A message's `content` (a string or content parts) as plain text."""
    if isinstance(content, str):
        return content
    return content_text(MessageCreate(role="user", content=content).content)


def render(
    history: Iterable[dict[str, Any]],
    agent_id: str,
    *,
    hidden_senders: Collection[str] = (),
) -> list[ModelMessage]:
    """Turn history messages (LettaMessage dicts, oldest first) into `agent_id`'s model context.

    - the agent's own words are `assistant` messages, with its tool calls attached to the
      message of the same step, and its tool returns `tool` messages right after;
    - a broadcast another agent sent (the supervisor's tool call), or a legacy agent's
      `send_message`, reaches it as that agent's `user` message; others' other tool traffic
      and everyone's reasoning stay private;
    - while the agent waits for a tool's return, others' messages are left out: the return
      reports them (the broadcast's replies), and providers want a return right after its call;
    - messages of `hidden_senders` are left out;
    - calls still unanswered when the human speaks again get a "not carried out" result.
    """
    fold = RenderFold(agent_id, hidden_senders)
    for message in history:
        fold.feed(message)
    return fold.out


class FoldMark(NamedTuple):
    """A `RenderFold`'s state after some message, to go back to (see `RenderFold.restore`)."""

    length: int
    last: ModelMessage | None
    """`out[length - 1]` then: a later message may have replaced it (a call joins its step's answer)."""
    awaiting: tuple[str, ...]
    own_step: str | None
    thoughts: tuple[Reasoning, ...]


class RenderFold:
    """`render` one message at a time: `out` is the context of the messages fed so far. A later
    message only appends to `out` or replaces its last element, so a fold can be marked after
    each message and taken back to any mark."""

    __slots__ = ("agent_id", "awaiting", "hidden_senders", "out", "own_step", "thoughts")

    def __init__(self, agent_id: str, hidden_senders: Collection[str] = ()) -> None:
        self.agent_id = agent_id
        self.hidden_senders = hidden_senders
        self.out: list[ModelMessage] = []
        self.awaiting: list[str] = []
        self.own_step: str | None = None
        self.thoughts: list[Reasoning] = []
        """The agent's reasoning of the current step, for the answer that follows it."""

    def mark(self) -> FoldMark:
        out = self.out
        return FoldMark(len(out), out[-1] if out else None, tuple(self.awaiting), self.own_step, tuple(self.thoughts))

    def restore(self, mark: FoldMark) -> None:
        del self.out[mark.length :]
        if mark.last is not None:
            self.out[-1] = mark.last
        self.awaiting = list(mark.awaiting)
        self.own_step = mark.own_step
        self.thoughts = list(mark.thoughts)

    def feed(self, msg: dict[str, Any]) -> None:
        out, awaiting = self.out, self.awaiting
        kind = msg.get("message_type")
        sender = msg.get("sender_id")
        own = sender == self.agent_id
        if awaiting and kind == "user_message" and sender is None:
            # the human moved on while calls went unanswered (a denied or failed resumption):
            # close them, since providers refuse a tool call without its result
            out.extend(ModelMessage("tool", UNANSWERED, tool_call_id=i) for i in awaiting)
            awaiting.clear()
        if not own and (awaiting or (sender is not None and sender in self.hidden_senders)):
            return
        if kind == "user_message":
            name = msg.get("name")
            text = message_text(msg["content"])
            out.append(ModelMessage("user", f"{name}: {text}" if name else text, name=name))
        elif kind == "system_message":
            out.append(ModelMessage("system", message_text(msg["content"])))
        elif kind == "reasoning_message" and own:
            if msg.get("step_id") != self.own_step:
                self.thoughts = []
            if msg.get("signature"):  # only signed thinking goes back (Anthropic, Bedrock require it)
                self.thoughts.append(Reasoning(str(msg.get("reasoning", "")), msg.get("signature")))
            self.own_step = msg.get("step_id")
            return
        elif kind == "assistant_message":
            text = message_text(msg["content"])
            if own:
                said = tuple(self.thoughts) if self.own_step == msg.get("step_id") else ()
                out.append(ModelMessage("assistant", text, reasoning=said))
                self.thoughts = []
                self.own_step = msg.get("step_id")
                return
            speaker = msg.get("name") or sender or "another agent"
            out.append(ModelMessage("user", f"{speaker}: {text}", name=msg.get("name")))
        elif kind in ("tool_call_message", "approval_request_message"):
            call = msg.get("tool_call") or {}
            if own:
                requests = tuple(
                    ToolCallRequest(c.get("tool_call_id") or "", c.get("name") or "", c.get("arguments") or "")
                    for c in (msg.get("tool_calls") or [call])
                )
                awaiting.extend(r.id for r in requests)
                previous = out[-1] if out else None
                if previous is not None and previous.role == "assistant" and self.own_step == msg.get("step_id"):
                    out[-1] = replace(previous, tool_calls=(*previous.tool_calls, *requests))
                else:
                    said = tuple(self.thoughts) if self.own_step == msg.get("step_id") else ()
                    out.append(ModelMessage("assistant", "", tool_calls=requests, reasoning=said))
                self.thoughts = []
                self.own_step = msg.get("step_id")
                return
            if kind == "tool_call_message" and call.get("name") in (BROADCAST, SPEECH_TOOL):
                speaker = msg.get("name") or sender or "another agent"
                out.append(ModelMessage("user", f"{speaker}: {_broadcast_text(call)}", name=msg.get("name")))
        elif kind == "tool_return_message" and own:
            call_id = msg.get("tool_call_id") or ""
            if call_id in awaiting:
                awaiting.remove(call_id)
            out.append(ModelMessage("tool", str(msg.get("tool_return", "")), tool_call_id=call_id))
        self.own_step = None


def _broadcast_text(call: dict[str, Any]) -> str:
    try:
        arguments = orjson.loads(call.get("arguments") or "{}")
    except orjson.JSONDecodeError:
        return str(call.get("arguments") or "")
    return str(arguments.get("message", "")) if isinstance(arguments, dict) else str(arguments)


def buffer(history: Sequence[dict[str, Any]], limit: int | None) -> Sequence[dict[str, Any]]:
    """The newest `limit` messages of `history`, not starting inside a tool exchange."""
    if limit is None or len(history) <= limit:
        return history
    window = history[-limit:]
    start = 0
    while start < len(window) and window[start].get("message_type") == "tool_return_message":
        start += 1
    return window[start:]


@dataclass(frozen=True, slots=True)
class Frame:
    """What a step's request holds besides the history. `instruction` is a user message for this turn
    (a question put to the agent); `reminder` a system note for this step only (a rule it has not
    met yet)."""

    model: str
    agent_id: str
    agent_name: str
    system: str
    tools: Sequence[ToolSpec] = ()
    instruction: str | None = None
    reminder: str | None = None
    enable_reasoning: bool = False


def build_request(
    *,
    model: str,
    agent_id: str,
    agent_name: str,
    system: str,
    history: Sequence[dict[str, Any]],
    tools: Sequence[ToolSpec] = (),
    instruction: str | None = None,
    hidden_senders: Collection[str] = (),
    context_limit: int | None = None,
    reminder: str | None = None,
    enable_reasoning: bool = False,
    summary: ModelMessage | None = None,
) -> ModelRequest:
    """The model request of one step (see `Frame`); `summary` opens the context in place of the history
    it covers (see `chorus.engine.compaction`)."""
    frame = Frame(model, agent_id, agent_name, system, tools, instruction, reminder, enable_reasoning)
    return assemble(render(buffer(history, context_limit), agent_id, hidden_senders=hidden_senders), frame, summary)


def assemble(rendered: Sequence[ModelMessage], frame: Frame, summary: ModelMessage | None = None) -> ModelRequest:
    """The request of `build_request` from history already rendered: `summary`, then `rendered`, then
    the turn's instruction and the step's reminder."""
    head = (summary,) if summary is not None else ()
    tail = ((ModelMessage("user", frame.instruction),) if frame.instruction is not None else ()) + (
        (ModelMessage("system", frame.reminder),) if frame.reminder is not None else ()
    )
    return ModelRequest(
        model=frame.model,
        agent_id=frame.agent_id,
        agent_name=frame.agent_name,
        system=frame.system,
        messages=(*head, *rendered, *tail),
        tools=tuple(frame.tools),
        enable_reasoning=frame.enable_reasoning,
    )
