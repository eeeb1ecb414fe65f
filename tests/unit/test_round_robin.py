"""Round robin as a pure function: state in, decision out."""

from __future__ import annotations

import pytest

from chorus.engine.managers import (
    AgentCall,
    EndRun,
    GroupView,
    ManagerSettings,
    RunAgents,
    RunProgress,
    TurnRecord,
    manager_for,
)

RR = manager_for("round_robin")


def view(n: int, max_turns: int | None = None) -> GroupView:
    return GroupView("group-x", tuple(f"a{i}" for i in range(n)), ManagerSettings(max_turns=max_turns))


def progress(*turns: tuple[str, str]) -> RunProgress:
    return RunProgress(tuple(TurnRecord(agent, stop) for agent, stop in turns))


@pytest.mark.parametrize(
    ("group", "done", "expected"),
    [
        (view(3), (), RunAgents((AgentCall("a0"),))),
        (view(3), (("a0", "end_turn"),), RunAgents((AgentCall("a1"),))),
        (view(3), (("a0", "end_turn"), ("a1", "end_turn")), RunAgents((AgentCall("a2"),))),
        (view(3), (("a0", "end_turn"), ("a1", "end_turn"), ("a2", "end_turn")), EndRun("end_turn")),
        (view(1), (), RunAgents((AgentCall("a0"),))),
        (view(1), (("a0", "end_turn"),), EndRun("end_turn")),
        (view(2, max_turns=3), (("a0", "end_turn"), ("a1", "end_turn")), RunAgents((AgentCall("a0"),))),
        (view(2, max_turns=1), (("a0", "end_turn"),), EndRun("end_turn")),
        (view(3), (("a0", "max_steps"),), RunAgents((AgentCall("a1"),))),
        (view(2), (("a0", "end_turn"), ("a1", "max_steps")), EndRun("max_steps")),
        (view(3), (("a0", "llm_api_error"),), EndRun("llm_api_error")),
        (view(3), (("a0", "end_turn"), ("a1", "requires_approval")), EndRun("requires_approval")),
        (view(3), (("a0", "cancelled"),), EndRun("cancelled")),
    ],
)
def test_round_robin_decisions(group: GroupView, done: tuple[tuple[str, str], ...], expected: object) -> None:
    assert RR.next(group, progress(*done)) == expected


def test_round_robin_is_deterministic() -> None:
    state = progress(("a0", "end_turn"))
    assert RR.next(view(3), state) == RR.next(view(3), state)


def test_full_rotation_with_wraparound() -> None:
    group, turns = view(3, max_turns=7), list[tuple[str, str]]()
    while True:
        decision = RR.next(group, progress(*turns))
        if isinstance(decision, EndRun):
            break
        assert isinstance(decision, RunAgents)
        turns.append((decision.calls[0].agent_id, "end_turn"))
    assert [t[0] for t in turns] == ["a0", "a1", "a2", "a0", "a1", "a2", "a0"]
