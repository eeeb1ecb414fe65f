"""Letta's tool rules, as a pure solver over the tool calls an agent made in its current turn.

Rules constrain which tools an agent may call next and when its turn ends:

- `run_first` (InitToolRule): the turn's first step may call only these tools;
- `constrain_child_tools` (ChildToolRule): after `tool_name`, only its `children`;
- `parent_last_tool` (ParentToolRule): its `children` only right after `tool_name`;
- `max_count_per_step` (MaxCountPerStepToolRule): at most `max_count_limit` calls per turn;
- `exit_loop` (TerminalToolRule): calling it ends the turn (stop reason `tool_rule`);
- `continue_loop` (ContinueToolRule): the turn goes on after it (the default here);
- `required_before_exit` (RequiredBeforeExitToolRule): the turn may not end before it was called;
- `requires_approval`: a human approves each call first (see the approvals flow).

The solver offers only the allowed tools each step and refuses a call of
any other (an error the model reads), so a model that ignores the offer
cannot break a rule. Letta calls a run of steps a "step"; here the unit is
the agent's turn (one request's worth of steps for that agent).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class ToolRules:
    rules: tuple[dict[str, Any], ...] = ()

    @classmethod
    def of(cls, rules: Iterable[dict[str, Any]] | None) -> ToolRules:
        return cls(tuple(rules or ()))

    def _names(self, kind: str) -> list[str]:
        return [r["tool_name"] for r in self.rules if r.get("type") == kind]

    def allowed(self, available: Sequence[str], called: Sequence[str]) -> list[str]:
        """The tools the next step may call, given those called so far in this turn (in order)."""
        names = list(available)
        if not called and (first := [n for n in self._names("run_first") if n in names]):
            names = first
        last = called[-1] if called else None
        for rule in self.rules:
            kind, tool = rule.get("type"), rule.get("tool_name")
            if kind == "constrain_child_tools" and tool == last:
                children = set(rule.get("children") or ())
                names = [n for n in names if n in children]
            elif kind == "parent_last_tool" and tool != last:
                children = set(rule.get("children") or ())
                names = [n for n in names if n not in children]
            elif kind == "max_count_per_step" and called.count(str(tool)) >= int(rule.get("max_count_limit") or 1):
                names = [n for n in names if n != tool]
        return names

    def ends_turn(self, name: str) -> bool:
        return name in self._names("exit_loop")

    def requires_approval(self, name: str) -> bool:
        return name in self._names("requires_approval")

    def missing_before_exit(self, called: Sequence[str]) -> list[str]:
        """Tools the turn must still call before it may end."""
        return [n for n in self._names("required_before_exit") if n not in called]
