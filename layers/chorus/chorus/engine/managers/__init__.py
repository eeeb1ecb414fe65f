"""Group managers by `manager_type`."""

from __future__ import annotations

from chorus.engine.managers.base import (
    AgentCall,
    Decision,
    Finish,
    GroupView,
    Manager,
    RunAgents,
    RunProgress,
    TurnRecord,
)
from chorus.engine.managers.round_robin import RoundRobin
from chorus.errors import NotImplementedYet

_MANAGERS: dict[str, Manager] = {"round_robin": RoundRobin()}


def manager_for(manager_type: str) -> Manager:
    """The manager of a type; `NotImplementedYet` (501) for types this build cannot run yet."""
    try:
        return _MANAGERS[manager_type]
    except KeyError:
        raise NotImplementedYet(
            f"Groups with manager_type {manager_type!r} can be created but not run yet by this build."
        ) from None


__all__ = [
    "AgentCall",
    "Decision",
    "Finish",
    "GroupView",
    "Manager",
    "RunAgents",
    "RunProgress",
    "TurnRecord",
    "manager_for",
]
