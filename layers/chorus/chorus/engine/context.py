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

from collections.abc import Iterable, Sequence
from typing import Any

from chorus.llm.base import ModelMessage, ModelRequest
from chorus.schemas.content import content_text
from chorus.schemas.requests import MessageCreate


def group_system_prompt(system: str, *, participants: int, description: str) -> str:
    """The agent's own system prompt plus the group-chat framing Letta adds to participants."""
    return (
        f"{system}\n\n%%% GROUP CHAT CONTEXT %%% You are speaking in a group chat with "
        f"{participants - 1} other participants. Group description: {description or '(none)'}. "
        "Others can see your messages; build on their contributions, stay on topic, be concise, "
        "and keep your own character. %%% END GROUP CHAT CONTEXT %%%"
    )


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return content_text(MessageCreate(role="user", content=content).content)


def render(history: Iterable[dict[str, Any]], agent_id: str) -> list[ModelMessage]:
    """Turn history messages (LettaMessage dicts, oldest first) into `agent_id`'s model context."""
    out: list[ModelMessage] = []
    for msg in history:
        kind = msg.get("message_type")
        sender = msg.get("sender_id")
        if kind == "user_message":
            name = msg.get("name")
            text = _text(msg["content"])
            out.append(ModelMessage("user", f"{name}: {text}" if name else text, name=name))
        elif kind == "system_message":
            out.append(ModelMessage("system", _text(msg["content"])))
        elif kind == "assistant_message":
            text = _text(msg["content"])
            if sender == agent_id:
                out.append(ModelMessage("assistant", text))
            else:
                speaker = msg.get("name") or sender or "another agent"
                out.append(ModelMessage("user", f"{speaker}: {text}", name=msg.get("name")))
    return out


def build_request(
    *,
    model: str,
    agent_id: str,
    agent_name: str,
    system: str,
    history: Sequence[dict[str, Any]],
) -> ModelRequest:
    return ModelRequest(
        model=model,
        agent_id=agent_id,
        agent_name=agent_name,
        system=system,
        messages=tuple(render(history, agent_id)),
    )
