"""Supervisor, dynamic, sleeptime and voice sleeptime as pure functions: state in, decision out."""

from __future__ import annotations

from typing import Any

import pytest

from chorus.engine.managers import (
    AWAITING_TOOL,
    AgentCall,
    EndRun,
    GroupView,
    ManagerSettings,
    PendingTool,
    RunAgents,
    RunProgress,
    TurnRecord,
    manager_for,
)
from chorus.engine.managers.dynamic import choose_speaker
from chorus.engine.tools import BROADCAST
from support import replies

NAMES = {"m": "Boss", "a": "Ada", "b": "Bo", "c": "Cy"}


def view(kind: str, agents: tuple[str, ...] = ("a", "b", "c"), **config: Any) -> GroupView:
    return GroupView(
        "group-x", agents, ManagerSettings.of({"manager_type": kind, "manager_agent_id": "m", **config}), NAMES
    )


def broadcast(call_id: str = "call-1", message: str = "plan it") -> TurnRecord:
    return TurnRecord("m", AWAITING_TOOL, "", pending=PendingTool(call_id, BROADCAST, {"message": message}))


def reply(agent: str, text: str = "", call_id: str = "call-1", **kw: Any) -> TurnRecord:
    return TurnRecord(agent, kw.pop("stop", "end_turn"), text, "reply", reply_to=call_id, **kw)


# supervisor

SUP = manager_for("supervisor")


def test_supervisor_starts_with_the_manager_offered_the_broadcast() -> None:
    assert SUP.next(view("supervisor"), RunProgress()) == RunAgents((AgentCall("m", tools=(BROADCAST,)),))


def test_supervisor_fans_a_broadcast_out_to_every_worker_in_order() -> None:
    decision = SUP.next(view("supervisor"), RunProgress((broadcast(),)))
    assert decision == RunAgents(tuple(AgentCall(w, purpose="reply", reply_to="call-1") for w in ("a", "b", "c")))


def test_supervisor_workers_exclude_the_manager_even_when_listed() -> None:
    decision = SUP.next(view("supervisor", ("a", "m", "b")), RunProgress((broadcast(),)))
    assert isinstance(decision, RunAgents)
    assert [c.agent_id for c in decision.calls] == ["a", "b"]


def test_supervisor_returns_the_replies_to_the_manager_as_the_tool_result() -> None:
    turns = (broadcast(), reply("a", "A says"), reply("b", ""), reply("c", "C says"))
    decision = SUP.next(view("supervisor"), RunProgress(turns))
    assert isinstance(decision, RunAgents) and len(decision.calls) == 1
    call = decision.calls[0]
    assert call.agent_id == "m" and call.tools == (BROADCAST,)
    assert call.tool_return is not None and call.tool_return.tool_call_id == "call-1"
    assert call.tool_return.name == BROADCAST and call.tool_return.status == "success"
    assert replies(call.tool_return.content) == [
        {"agent_id": "a", "name": "Ada", "response_messages": ["A says"]},
        {"agent_id": "b", "name": "Bo", "response_messages": ["<no response>"]},
        {"agent_id": "c", "name": "Cy", "response_messages": ["C says"]},
    ]


def test_supervisor_reports_a_failed_worker_as_its_reply_and_carries_on() -> None:
    failed = reply("b", stop="llm_api_error", error="The model failed: boom")
    turns = (broadcast(), reply("a", "ok"), failed, reply("c", "ok"))
    decision = SUP.next(view("supervisor"), RunProgress(turns))
    assert isinstance(decision, RunAgents)
    entries = replies(decision.calls[0].tool_return.content)  # type: ignore[union-attr]
    assert entries[1] == {"agent_id": "b", "name": "Bo", "error": "The model failed: boom"}


def test_supervisor_only_collects_replies_of_the_latest_broadcast() -> None:
    turns = (
        broadcast("call-1"),
        reply("a", "first", "call-1"),
        TurnRecord("m", AWAITING_TOOL, "", pending=PendingTool("call-2", BROADCAST, {"message": "again"})),
        reply("a", "second", "call-2"),
    )
    decision = SUP.next(view("supervisor", ("a",)), RunProgress(turns))
    content = replies(decision.calls[0].tool_return.content)  # type: ignore[union-attr]
    assert decision.calls[0].tool_return.tool_call_id == "call-2"  # type: ignore[union-attr]
    assert content == [{"agent_id": "a", "name": "Ada", "response_messages": ["second"]}]


@pytest.mark.parametrize(
    ("last", "expected"),
    [
        (TurnRecord("m", "end_turn", "final answer"), EndRun("end_turn")),
        (TurnRecord("m", "max_steps"), EndRun("max_steps")),
        (TurnRecord("m", "llm_api_error"), EndRun("llm_api_error")),
        (TurnRecord("m", "cancelled"), EndRun("cancelled")),
    ],
)
def test_supervisor_finishes_when_the_manager_answers_or_fails(last: TurnRecord, expected: EndRun) -> None:
    assert SUP.next(view("supervisor"), RunProgress((broadcast(), reply("a"), last))) == expected


def test_supervisor_bounds_broadcast_rounds_by_max_steps() -> None:
    turns = (broadcast("c1"), reply("a", call_id="c1"), broadcast("c2"))
    assert SUP.next(view("supervisor", ("a",)), RunProgress(turns, max_steps=1)) == EndRun("max_steps")
    assert isinstance(SUP.next(view("supervisor", ("a",)), RunProgress(turns, max_steps=2)), RunAgents)


# dynamic

DYN = manager_for("dynamic")


def choose(text: str) -> TurnRecord:
    return TurnRecord("m", "end_turn", text, "choose")


def speak(agent: str, text: str = "hello") -> TurnRecord:
    return TurnRecord(agent, "end_turn", text)


def test_dynamic_asks_the_manager_first_listing_every_option() -> None:
    decision = DYN.next(view("dynamic"), RunProgress())
    assert isinstance(decision, RunAgents)
    call = decision.calls[0]
    assert call.agent_id == "m" and call.purpose == "choose"
    assert call.instruction is not None and "[Ada, Bo, Cy]" in call.instruction and "DONE!" in call.instruction


def test_dynamic_runs_the_named_agent_hiding_the_managers_choices() -> None:
    decision = DYN.next(view("dynamic"), RunProgress((choose("I pick Bo."),)))
    assert decision == RunAgents((AgentCall("b", hidden_senders=("m",)),))


def test_dynamic_manager_that_also_participates_is_not_hidden() -> None:
    decision = DYN.next(view("dynamic", ("a", "m")), RunProgress((choose("Ada"),)))
    assert decision == RunAgents((AgentCall("a"),))


def test_dynamic_never_offers_the_previous_speaker_again() -> None:
    decision = DYN.next(view("dynamic"), RunProgress((choose("Bo"), speak("b"))))
    assert isinstance(decision, RunAgents)
    assert "[Cy, Ada]" in (decision.calls[0].instruction or "")
    # naming the previous speaker does not pick them: the first other option named wins, else round robin
    after = DYN.next(view("dynamic"), RunProgress((choose("Bo"), speak("b"), choose("Bo again"))))
    assert after == RunAgents((AgentCall("c", hidden_senders=("m",)),))


def test_dynamic_one_agent_group_may_repeat_its_only_speaker() -> None:
    group = view("dynamic", ("a",), max_turns=3)
    decision = DYN.next(group, RunProgress((choose("Ada"), speak("a"), choose("Ada"))))
    assert decision == RunAgents((AgentCall("a", hidden_senders=("m",)),))


@pytest.mark.parametrize(
    ("reply_text", "expected"),
    [
        ("Ada, not Bo", "a"),
        ("bo should go", "b"),
        ("CY!", "c"),
        ("Adam? no, Cy", "c"),  # whole words only: "Adam" is not "Ada"
        ("nobody in particular", "a"),  # names no option: the first option (round-robin order)
    ],
)
def test_choose_speaker(reply_text: str, expected: str) -> None:
    assert choose_speaker(reply_text, [("a", "Ada"), ("b", "Bo"), ("c", "Cy")]) == expected


def test_choose_speaker_prefers_the_longest_name_at_the_same_place() -> None:
    assert choose_speaker("Bo Smith speaks", [("b", "Bo"), ("s", "Bo Smith")]) == "s"


@pytest.mark.parametrize(
    ("turns", "expected"),
    [
        ((choose("Ada"), speak("a", "we are DONE!")), EndRun("end_turn")),
        ((choose("DONE!"),), EndRun("end_turn")),
        ((choose("Ada"), speak("a"), choose("Bo"), speak("b"), choose("Cy"), speak("c")), EndRun("max_steps")),
        ((choose("Ada"), TurnRecord("a", "llm_api_error")), EndRun("llm_api_error")),
        ((TurnRecord("m", "rate_limit", purpose="choose"),), EndRun("rate_limit")),
    ],
)
def test_dynamic_termination(turns: tuple[TurnRecord, ...], expected: EndRun) -> None:
    assert DYN.next(view("dynamic"), RunProgress(turns)) == expected


def test_dynamic_custom_token_and_max_turns() -> None:
    group = view("dynamic", termination_token="STOP", max_turns=1)
    assert DYN.next(group, RunProgress((choose("Ada"), speak("a", "DONE!")))) == EndRun("max_steps")
    group = view("dynamic", termination_token="STOP", max_turns=5)
    assert DYN.next(group, RunProgress((choose("Ada"), speak("a", "ok STOP")))) == EndRun("end_turn")


# sleeptime

SLEEP = manager_for("sleeptime")
VOICE = manager_for("voice_sleeptime")


def test_sleeptime_foreground_answers_first() -> None:
    assert SLEEP.next(view("sleeptime"), RunProgress()) == RunAgents((AgentCall("m"),))


@pytest.mark.parametrize(
    ("frequency", "turn_number", "background"),
    [
        (None, 1, ("a", "b", "c")),
        (1, 7, ("a", "b", "c")),
        (3, 1, ()),
        (3, 2, ()),
        (3, 3, ("a", "b", "c")),
        (3, 6, ("a", "b", "c")),
    ],
)
def test_sleeptime_runs_background_agents_every_n_turns(
    frequency: int | None, turn_number: int, background: tuple[str, ...]
) -> None:
    group = view("sleeptime", sleeptime_agent_frequency=frequency)
    progress = RunProgress((TurnRecord("m", "end_turn", "hi"),), turn_number=turn_number)
    assert SLEEP.next(group, progress) == EndRun("end_turn", background=background)


def test_sleeptime_failed_foreground_starts_no_background_run() -> None:
    progress = RunProgress((TurnRecord("m", "llm_api_error"),))
    assert SLEEP.next(view("sleeptime"), progress) == EndRun("llm_api_error")


def test_voice_sleeptime_bounds_the_foreground_context_to_its_buffer() -> None:
    decision = VOICE.next(view("voice_sleeptime", max_message_buffer_length=10), RunProgress())
    assert decision == RunAgents((AgentCall("m", context_limit=10),))
    assert VOICE.next(view("voice_sleeptime"), RunProgress()) == RunAgents((AgentCall("m", context_limit=30),))


@pytest.mark.parametrize(
    ("backlog", "expected"),
    [
        (10, EndRun("end_turn")),
        (11, EndRun("end_turn", background=("a", "b", "c"), keep_recent=6)),
        (40, EndRun("end_turn", background=("a", "b", "c"), keep_recent=6)),
    ],
)
def test_voice_sleeptime_evicts_past_the_buffer(backlog: int, expected: EndRun) -> None:
    group = view("voice_sleeptime", max_message_buffer_length=10, min_message_buffer_length=6)
    progress = RunProgress((TurnRecord("m", "end_turn"),), backlog=backlog)
    assert VOICE.next(group, progress) == expected


@pytest.mark.parametrize("kind", ["round_robin", "supervisor", "dynamic", "sleeptime", "voice_sleeptime"])
def test_every_manager_is_deterministic_and_handles_a_one_agent_group(kind: str) -> None:
    group = view(kind, ("a",))
    progress = RunProgress()
    seen = []
    for _ in range(12):
        decision = manager_for(kind).next(group, progress)
        assert decision == manager_for(kind).next(group, progress)
        if isinstance(decision, EndRun):
            break
        assert isinstance(decision, RunAgents)
        turns = []
        for call in decision.calls:
            seen.append(call.agent_id)
            if call.tools and call.tool_return is None:
                turns.append(broadcast(f"call-{len(seen)}"))
            else:
                turns.append(TurnRecord(call.agent_id, "end_turn", "Ada", call.purpose, reply_to=call.reply_to))
        progress = RunProgress((*progress.turns, *turns))
    else:
        pytest.fail(f"{kind} never finished a one-agent group")
    assert set(seen) <= {"a", "m"}
