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
from dataclasses import replace
from typing import Any

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
    out: list[ModelMessage] = []
    awaiting: list[str] = []
    own_step: str | None = None
    thoughts: list[Reasoning] = []
    """The agent's reasoning of the current step, for the answer that follows it."""
    for msg in history:
        kind = msg.get("message_type")
        sender = msg.get("sender_id")
        own = sender == agent_id
        if awaiting and kind == "user_message" and sender is None:
            # the human moved on while calls went unanswered (a denied or failed resumption):
            # close them, since providers refuse a tool call without its result
            out.extend(ModelMessage("tool", UNANSWERED, tool_call_id=i) for i in awaiting)
            awaiting.clear()
        if not own and (awaiting or (sender is not None and sender in hidden_senders)):
            continue
        if kind == "user_message":
            name = msg.get("name")
            text = message_text(msg["content"])
            out.append(ModelMessage("user", f"{name}: {text}" if name else text, name=name))
        elif kind == "system_message":
            out.append(ModelMessage("system", message_text(msg["content"])))
        elif kind == "reasoning_message" and own:
            if msg.get("step_id") != own_step:
                thoughts = []
            if msg.get("signature"):  # only signed thinking goes back (Anthropic, Bedrock require it)
                thoughts.append(Reasoning(str(msg.get("reasoning", "")), msg.get("signature")))
            own_step = msg.get("step_id")
            continue
        elif kind == "assistant_message":
            text = message_text(msg["content"])
            if own:
                said = tuple(thoughts) if own_step == msg.get("step_id") else ()
                out.append(ModelMessage("assistant", text, reasoning=said))
                thoughts = []
                own_step = msg.get("step_id")
                continue
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
                if previous is not None and previous.role == "assistant" and own_step == msg.get("step_id"):
                    out[-1] = replace(previous, tool_calls=(*previous.tool_calls, *requests))
                else:
                    said = tuple(thoughts) if own_step == msg.get("step_id") else ()
                    out.append(ModelMessage("assistant", "", tool_calls=requests, reasoning=said))
                thoughts = []
                own_step = msg.get("step_id")
                continue
            if kind == "tool_call_message" and call.get("name") in (BROADCAST, SPEECH_TOOL):
                speaker = msg.get("name") or sender or "another agent"
                out.append(ModelMessage("user", f"{speaker}: {_broadcast_text(call)}", name=msg.get("name")))
        elif kind == "tool_return_message" and own:
            call_id = msg.get("tool_call_id") or ""
            if call_id in awaiting:
                awaiting.remove(call_id)
            out.append(ModelMessage("tool", str(msg.get("tool_return", "")), tool_call_id=call_id))
        own_step = None
    return out


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
    """The model request of one step. `instruction` is a user message for this turn (a question put
    to the agent); `reminder` a system note for this step only (a rule it has not met yet); `summary`
    opens the context in place of the history it covers (see `chorus.engine.compaction`)."""
    messages = render(buffer(history, context_limit), agent_id, hidden_senders=hidden_senders)
    if summary is not None:
        messages.insert(0, summary)
    if instruction is not None:
        messages.append(ModelMessage("user", instruction))
    if reminder is not None:
        messages.append(ModelMessage("system", reminder))
    return ModelRequest(
        model=model,
        agent_id=agent_id,
        agent_name=agent_name,
        system=system,
        messages=tuple(messages),
        tools=tuple(tools),
        enable_reasoning=enable_reasoning,
    )
