"""Sleeptime and voice sleeptime: one agent answers, background agents digest the conversation.

Letta's semantics: the foreground agent (`manager_agent_id`) answers the
user; the other agents of the group are *sleeptime* agents that run as
their own runs after the answer, over the messages they have not processed
yet, to update the group's shared memory. The foreground stream does not
wait for them: their run ids are announced in `usage_statistics.run_ids`
and they can be polled or resumed like any background run.

- `sleeptime`: they run every `sleeptime_agent_frequency` group turns
  (every turn when unset), counted by the group's `turns_counter`.
- `voice_sleeptime`: the foreground agent sees only its message buffer, the
  newest `max_message_buffer_length` messages; when the unprocessed history
  outgrows that, the oldest messages are handed to the sleeptime agents
  until `min_message_buffer_length` remain (Letta's defaults: 30 and 15).
"""

from __future__ import annotations

from chorus.engine.managers.base import (
    AgentCall,
    Decision,
    EndRun,
    GroupView,
    RunAgents,
    RunProgress,
    last_stop,
    stop_early,
)


class Sleeptime:
    def next(self, group: GroupView, progress: RunProgress) -> Decision:
        early = stop_early(progress)
        if early is not None:
            return early
        if not progress.turns:
            return RunAgents((AgentCall(group.manager_agent_id or group.agent_ids[0]),))
        frequency = group.config.sleeptime_agent_frequency
        due = not frequency or progress.turn_number % frequency == 0
        return EndRun(last_stop(progress), background=group.members_besides_manager() if due else ())


def buffer_bounds(group: GroupView) -> tuple[int, int]:
    """`(min, max)` message buffer lengths of a voice sleeptime group, with Letta's defaults."""
    return group.config.min_message_buffer_length, group.config.max_message_buffer_length


class VoiceSleeptime:
    def next(self, group: GroupView, progress: RunProgress) -> Decision:
        early = stop_early(progress)
        if early is not None:
            return early
        low, high = buffer_bounds(group)
        if not progress.turns:
            return RunAgents((AgentCall(group.manager_agent_id or group.agent_ids[0], context_limit=high),))
        if progress.backlog > high:
            return EndRun(last_stop(progress), background=group.members_besides_manager(), keep_recent=low)
        return EndRun(last_stop(progress))
