"""What a sleeptime agent is given: a transcript of the conversation it has not seen yet.

Pure. Letta hands its sleeptime agents one user message: a reminder of
their role (background memory keepers, not participants) and the new
messages, one per line as `speaker: text`. Tool traffic and reasoning are
left out; they are how speakers worked, not what they said.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chorus.engine.context import message_text

REMINDER = (
    "<system-reminder>\n"
    "You are a sleeptime agent - a background agent that asynchronously processes conversations after "
    "they occur.\n\n"
    "IMPORTANT: You are NOT the primary agent. You are reviewing a conversation that already happened "
    "between the group's agents and their user. Your primary role is memory management: review the "
    "conversation and keep what is worth preserving.\n"
    "</system-reminder>\n\n"
)


def _line(message: dict[str, Any]) -> str | None:
    kind = message.get("message_type")
    if kind not in ("user_message", "assistant_message", "system_message"):
        return None
    text = message_text(message.get("content"))
    speaker = message.get("name") or {"user_message": "user", "system_message": "system"}.get(kind, "assistant")
    return f"{speaker}: {text}"


def transcript(messages: Iterable[dict[str, Any]]) -> str:
    lines = [line for line in map(_line, messages) if line is not None]
    return REMINDER + "Messages:\n" + "\n".join(lines)
