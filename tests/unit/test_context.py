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


def call(
    sender: str, name: str, tool: str, arguments: str, call_id: str, step: str, kind: str = "tool_call_message"
) -> dict[str, object]:
    tool_call = {"name": tool, "arguments": arguments, "tool_call_id": call_id}
    return {"message_type": kind, "tool_call": tool_call, "tool_calls": [tool_call], "sender_id": sender,
            "name": name, "step_id": step}  # fmt: skip


def ret(sender: str, call_id: str, content: str) -> dict[str, object]:
    return {"message_type": "tool_return_message", "tool_return": content, "tool_call_id": call_id,
            "sender_id": sender, "status": "success"}  # fmt: skip


def test_tool_traffic_from_each_side() -> None:
    from chorus.llm.base import ToolCallRequest

    history = [
        msg("user_message", "go"),
        {**msg("assistant_message", "Let me look.", "a", "Ada"), "step_id": "s1"},
        call("a", "Ada", "lookup", '{"q": 1}', "c1", "s1"),
        ret("a", "c1", "found"),
        call("b", "Bo", "send_message", '{"message": "Bo says hi"}', "c2", "s2"),
        ret("b", "c2", "Sent message successfully."),
        call("m", "Boss", "send_message_to_all_agents_in_group", '{"message": "ideas?"}', "c3", "s3"),
    ]
    assert render(history, "a") == [
        ModelMessage("user", "go"),
        ModelMessage("assistant", "Let me look.", tool_calls=(ToolCallRequest("c1", "lookup", '{"q": 1}'),)),
        ModelMessage("tool", "found", tool_call_id="c1"),
        ModelMessage("user", "Bo: Bo says hi", name="Bo"),  # a legacy agent's speech is its message
        ModelMessage("user", "Boss: ideas?", name="Boss"),  # so is a broadcast
    ]
    # Bo sees Ada's words but not her tool traffic
    assert [m.content for m in render(history, "b")][:2] == ["go", "Ada: Let me look."]


def test_unanswered_calls_are_closed_when_the_human_speaks_again() -> None:
    history = [
        msg("user_message", "go"),
        call("a", "Ada", "lookup", "{}", "c1", "s1", kind="approval_request_message"),
        msg("assistant_message", "B talks meanwhile", "b", "Bo"),
        msg("user_message", "never mind"),
    ]
    rendered = render(history, "a")
    assert [(m.role, m.content) for m in rendered] == [
        ("user", "go"),
        ("assistant", ""),
        ("tool", "No result: this call was not carried out."),
        ("user", "never mind"),
    ]
    assert rendered[2].tool_call_id == "c1"


def test_signed_reasoning_goes_back_with_the_answer_of_its_step() -> None:
    from chorus.llm.base import Reasoning, ToolCallRequest

    history = [
        msg("user_message", "go"),
        {**msg("reasoning_message", None, "a", "Ada"), "reasoning": "think", "signature": "sig1", "step_id": "s1"},
        call("a", "Ada", "lookup", "{}", "c1", "s1"),
        ret("a", "c1", "found"),
        {**msg("reasoning_message", None, "a", "Ada"), "reasoning": "unsigned", "signature": None, "step_id": "s2"},
        {**msg("assistant_message", "done", "a", "Ada"), "step_id": "s2"},
    ]
    rendered = render(history, "a")
    assert rendered[1] == ModelMessage(
        "assistant", "", tool_calls=(ToolCallRequest("c1", "lookup", "{}"),), reasoning=(Reasoning("think", "sig1"),)
    )
    assert rendered[3] == ModelMessage("assistant", "done")
    assert all(not m.reasoning for m in render(history, "b")), "nobody else's thinking"
