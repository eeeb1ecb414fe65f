"""Context-window compaction, the pure part: what is in an agent's context, and what to summarise.

A group's history only grows; an agent's context window does not. When a
step's request would not leave room for the answer, the oldest part of the
history is replaced, in every agent's context, by a summary: a message of the
group's history (type `summary`, Letta's `SummaryMessage`) that records which
messages it covers (`compaction.first_message_id` … `last_message_id`). The
messages stay in the store and in `GET …/messages`; contexts built after it
show the summary instead of them. A later compaction summarises the previous
summary together with the next stretch of history, so one summary always
covers everything from the group's first message to its `last_message_id`,
and each compaction reads at most about one window of messages.

What is never summarised: the system prompt and memory blocks (they are not
history), the newest messages (at least the newest one, and about half the room
left after the fixed parts), and a tool call whose return has not come yet, or
comes after the cut: the call and everything after it stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chorus.engine.context import message_text
from chorus.tokens import MESSAGE_OVERHEAD, count_text
from chorus.vocabulary import ModelMessage, ModelRequest

SUMMARY = "summary"
"""The `message_type` of a summary in history (Letta's `SummaryMessage`)."""

SUMMARY_MAX_TOKENS = 1_024
"""The longest summary asked for (a small window asks for an eighth of itself)."""


def summary_allowance(window: int) -> int:
    """Tokens a summary may take in a context of `window` tokens."""
    return min(SUMMARY_MAX_TOKENS, window // 8)


SUMMARISER_SYSTEM = (
    "You compact a long group conversation so it can continue within a limited context. "
    "Write a concise summary of the conversation below, in the third person, naming who said what: "
    "keep facts, decisions, open questions, commitments and the results of tool calls that still "
    "matter; drop pleasantries and repetition. If a previous summary is given, fold it in: your "
    "summary replaces it. Answer with the summary only."
)


@dataclass(frozen=True, slots=True)
class InContext:
    """What of a history an agent's context holds: the latest summary, then the messages after it."""

    summary: dict[str, Any] | None
    messages: list[dict[str, Any]]


def in_context(history: Sequence[dict[str, Any]]) -> InContext:
    """Split `history` (oldest first) at its latest summary: the summary, and the messages it does
    not cover (summaries left out). Messages older than the last one covered are dropped even
    when the history holds them (a run's own loaded history is wider than the summary's tail)."""
    latest: dict[str, Any] | None = None
    for message in reversed(history):
        if message.get("message_type") == SUMMARY:
            latest = message
            break
    rest = [m for m in history if m.get("message_type") != SUMMARY]
    if latest is None:
        return InContext(None, rest)
    last = latest.get("compaction", {}).get("last_message_id")
    for i, message in enumerate(rest):
        if message.get("id") == last:
            return InContext(latest, rest[i + 1 :])
    return InContext(latest, rest)


def covered_until(message: dict[str, Any]) -> str | None:
    """The id of the newest message a summary covers (None for any other message)."""
    if message.get("message_type") != SUMMARY:
        return None
    last = message.get("compaction", {}).get("last_message_id")
    return str(last) if last else None


def message_tokens(message: dict[str, Any]) -> int:
    """About what a history message costs in a context (the renderer adds a speaker's name)."""
    kind = message.get("message_type")
    tokens = MESSAGE_OVERHEAD + count_text(str(message.get("name") or ""))
    if kind in ("user_message", "system_message", "assistant_message"):
        return tokens + count_text(message_text(message.get("content") or ""))
    if kind == "reasoning_message":
        return tokens + count_text(str(message.get("reasoning") or ""))
    if kind == "tool_return_message":
        return tokens + count_text(str(message.get("tool_return") or ""))
    if kind == SUMMARY:
        return tokens + count_text(str(message.get("summary") or ""))
    for call in message.get("tool_calls") or [message.get("tool_call") or {}]:
        tokens += MESSAGE_OVERHEAD + count_text(str(call.get("name") or "")) + count_text(str(call.get("arguments")))
    return tokens


def choose_cut(messages: Sequence[dict[str, Any]], keep_tokens: int) -> int:
    """How many of the oldest `messages` to summarise (0: none) so that the rest costs at most
    about `keep_tokens`. The newest message always stays, a step's messages stay together, and
    no tool call is summarised while its return is missing or kept."""
    kept = 0
    cut = len(messages)
    while cut > 0 and kept + message_tokens(messages[cut - 1]) <= keep_tokens:
        cut -= 1
        kept += message_tokens(messages[cut])
    cut = min(cut, len(messages) - 1)
    while 0 < cut < len(messages) and _same_step(messages[cut - 1], messages[cut]):
        cut -= 1
    return _before_open_calls(messages, cut)


def _same_step(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("step_id") is not None and a.get("step_id") == b.get("step_id")


def _before_open_calls(messages: Sequence[dict[str, Any]], cut: int) -> int:
    """Move `cut` back to the oldest tool call before it not answered before it. Calls are matched
    to the returns that follow them, so an id used again later (some models reuse them) is no match."""
    open_calls: dict[str, int] = {}
    for i, message in enumerate(messages[:cut]):
        kind = message.get("message_type")
        if kind in ("tool_call_message", "approval_request_message"):
            for call in message.get("tool_calls") or [message.get("tool_call") or {}]:
                open_calls.setdefault(str(call.get("tool_call_id")), i)
        elif kind == "tool_return_message":
            open_calls.pop(str(message.get("tool_call_id")), None)
    return min(open_calls.values(), default=cut)


def transcript(previous: dict[str, Any] | None, messages: Sequence[dict[str, Any]]) -> str:
    """The text a summariser reads: the previous summary, then one line per message."""
    lines = [f"Previous summary: {previous.get('summary', '')}"] if previous is not None else []
    for m in messages:
        kind = m.get("message_type")
        who = m.get("name") or ("user" if m.get("sender_id") is None else m.get("sender_id"))
        if kind in ("user_message", "system_message", "assistant_message"):
            lines.append(f"{who}: {message_text(m.get('content') or '')}")
        elif kind in ("tool_call_message", "approval_request_message"):
            for call in m.get("tool_calls") or [m.get("tool_call") or {}]:
                lines.append(f"{who} called {call.get('name')}({call.get('arguments')})")
        elif kind == "tool_return_message":
            lines.append(f"{who}'s tool returned: {m.get('tool_return')}")
    return "\n".join(lines)


def summary_request(
    *,
    model: str,
    agent_id: str,
    agent_name: str,
    previous: dict[str, Any] | None,
    messages: Sequence[dict[str, Any]],
    max_tokens: int,
) -> ModelRequest:
    """The model call that writes a summary."""
    return ModelRequest(
        model=model,
        agent_id=agent_id,
        agent_name=agent_name,
        system=SUMMARISER_SYSTEM,
        messages=(ModelMessage("user", transcript(previous, messages)),),
        max_tokens=max_tokens,
        purpose="summary",
    )


def summary_fields(
    text: str, previous: dict[str, Any] | None, messages: Sequence[dict[str, Any]], tokens_before: int
) -> dict[str, Any]:
    """The fields of a new summary message (its header comes from the step that writes it)."""
    earlier = previous.get("compaction", {}) if previous is not None else {}
    return {
        "summary": text,
        "compaction": {
            "first_message_id": earlier.get("first_message_id") or messages[0].get("id"),
            "last_message_id": messages[-1].get("id"),
            "messages": int(earlier.get("messages", 0)) + len(messages),
            "tokens_before": tokens_before,
        },
    }


def as_context(summary: dict[str, Any]) -> ModelMessage:
    """A summary as the context shows it: the conversation's opening user message."""
    count = summary.get("compaction", {}).get("messages", 0)
    return ModelMessage("user", f"[Summary of the {count} earlier messages of this conversation] {summary['summary']}")
