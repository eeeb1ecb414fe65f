"""Letta's tool rules as a pure solver: calls so far in, allowed tools out."""

from __future__ import annotations

from typing import Any

import pytest

from chorus.engine.tool_rules import ToolRules

TOOLS = ["search", "answer", "fetch", "log"]


def rules(*items: dict[str, Any]) -> ToolRules:
    return ToolRules.of(items)


@pytest.mark.parametrize(
    ("solver", "called", "allowed"),
    [
        (rules(), [], TOOLS),
        (rules({"type": "run_first", "tool_name": "search"}), [], ["search"]),
        (rules({"type": "run_first", "tool_name": "search"}), ["search"], TOOLS),
        (rules({"type": "run_first", "tool_name": "missing"}), [], TOOLS),  # an init tool not offered binds nothing
        (rules({"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]}), ["search"], ["fetch"]),
        (rules({"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch"]}), ["log"], TOOLS),
        (
            rules({"type": "parent_last_tool", "tool_name": "search", "children": ["fetch"]}),
            [],
            ["search", "answer", "log"],
        ),
        (rules({"type": "parent_last_tool", "tool_name": "search", "children": ["fetch"]}), ["search"], TOOLS),
        (
            rules({"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 2}),
            ["search", "search"],
            ["answer", "fetch", "log"],
        ),
        (rules({"type": "max_count_per_step", "tool_name": "search", "max_count_limit": 2}), ["search"], TOOLS),
        (
            rules(
                {"type": "run_first", "tool_name": "search"},
                {"type": "constrain_child_tools", "tool_name": "search", "children": ["fetch", "answer"]},
                {"type": "max_count_per_step", "tool_name": "fetch", "max_count_limit": 1},
            ),
            ["search"],
            ["answer", "fetch"],
        ),
    ],
)
def test_allowed(solver: ToolRules, called: list[str], allowed: list[str]) -> None:
    assert solver.allowed(TOOLS, called) == allowed


def test_terminal_approval_and_required_before_exit() -> None:
    solver = rules(
        {"type": "exit_loop", "tool_name": "answer"},
        {"type": "requires_approval", "tool_name": "fetch"},
        {"type": "required_before_exit", "tool_name": "log"},
        {"type": "continue_loop", "tool_name": "search"},
    )
    assert solver.ends_turn("answer") and not solver.ends_turn("search")
    assert solver.requires_approval("fetch") and not solver.requires_approval("answer")
    assert solver.missing_before_exit(["search"]) == ["log"]
    assert solver.missing_before_exit(["log"]) == []
