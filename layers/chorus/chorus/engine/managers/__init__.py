"""Group managers by `manager_type`."""

from __future__ import annotations

from chorus.engine.managers.base import (
    AWAITING_TOOL,
    AgentCall,
    Decision,
    EndRun,
    GroupView,
    Manager,
    PendingTool,
    RunAgents,
    RunProgress,
    ToolReturn,
    TurnRecord,
)
from chorus.engine.managers.config import ManagerSettings
from chorus.engine.managers.dynamic import Dynamic
from chorus.engine.managers.round_robin import RoundRobin
from chorus.engine.managers.sleeptime import Sleeptime, VoiceSleeptime
from chorus.engine.managers.supervisor import Supervisor

_MANAGERS: dict[str, Manager] = {
    "round_robin": RoundRobin(),
    "supervisor": Supervisor(),
    "dynamic": Dynamic(),
    "sleeptime": Sleeptime(),
    "voice_sleeptime": VoiceSleeptime(),
}


def manager_for(manager_type: str) -> Manager:
    """The manager of a `manager_type` (every type the API accepts has one)."""
    return _MANAGERS[manager_type]


__all__ = [
    "AWAITING_TOOL",
    "AgentCall",
    "Decision",
    "EndRun",
    "GroupView",
    "Manager",
    "ManagerSettings",
    "PendingTool",
    "RunAgents",
    "RunProgress",
    "ToolReturn",
    "TurnRecord",
    "manager_for",
]
