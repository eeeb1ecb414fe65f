"""What each agent reads: its own words as `assistant`, others' forwarded with their names."""

from __future__ import annotations

from chorus.engine.context import build_request, group_system_prompt, render
from chorus.llm.base import ModelMessage


def msg(kind: str, content: object, sender: str | None = None, name: str | None = None) -> dict[str, object]:
    return {"message_type": kind, "content": content, "sender_id": sender, "name": name}


HISTORY = [
    msg("user_message", "hello"),
    msg("assistant_message", "I am A", "a", "Ada"),
    msg("reasoning_message", "hidden", "b", "Brook"),
    msg("assistant_message", "I am B", "b", "Brook"),
    msg("system_message", "note"),
    msg("user_message", [{"type": "text", "text": "part"}], name="Zoe"),
]


def test_render_from_each_side() -> None:
    assert render(HISTORY, "a") == [
        ModelMessage("user", "hello"),
        ModelMessage("assistant", "I am A"),
        ModelMessage("user", "Brook: I am B", name="Brook"),
        ModelMessage("system", "note"),
        ModelMessage("user", "Zoe: part", name="Zoe"),
    ]
    from_b = render(HISTORY, "b")
    assert from_b[1] == ModelMessage("user", "Ada: I am A", name="Ada")
    assert from_b[2] == ModelMessage("assistant", "I am B")


def test_request_carries_group_framing() -> None:
    system = group_system_prompt("You are Ada.", participants=3, description="planning")
    assert system.startswith("You are Ada.") and "2 other participants" in system and "planning" in system
    request = build_request(model="m", agent_id="a", agent_name="Ada", system=system, history=HISTORY)
    assert request.agent_name == "Ada" and len(request.messages) == 5
