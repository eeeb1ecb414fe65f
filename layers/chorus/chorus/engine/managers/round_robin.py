"""Round robin, with Letta's semantics.

Agents speak in `agent_ids` order, `max_turns` turns in all (default: one
each), wrapping around when `max_turns` exceeds the group. The run's stop
reason is the last turn's (`end_turn`, or `max_steps` if that agent ran out
of steps); a failing turn ends the run at once with its reason.
"""

from __future__ import annotations

from chorus.engine.managers.base import (
    AgentCall,
    Decision,
    EndRun,
    GroupView,
    RunAgents,
    RunProgress,
    stop_early,
)


class RoundRobin:
    def next(self, group: GroupView, progress: RunProgress) -> Decision:
        early = stop_early(progress)
        if early is not None:
            return early
        max_turns = group.config.max_turns or len(group.agent_ids)
        done = len(progress.turns)
        if done >= max_turns or not group.agent_ids:
            return EndRun(progress.turns[-1].stop_reason if progress.turns else "end_turn")
        return RunAgents((AgentCall(group.agent_ids[done % len(group.agent_ids)]),))
