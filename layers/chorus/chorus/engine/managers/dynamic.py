"""Dynamic: a manager agent picks who speaks next, turn by turn.

Letta's semantics: each round the manager (`manager_agent_id`) is asked to
choose the most suitable agent among `agent_ids`, never the previous speaker
(unless it is the only one); the chosen agent speaks; `max_turns` (default:
the number of agents) bounds the speaking turns, and a reply containing
`termination_token` (default `"DONE!"`) ends the run. Letta's version has
been broken upstream since 2025 (it asserts when the manager's reply names
no agent); here:

- the choice is the option name that appears *first* in the manager's reply
  (case-insensitive, whole words; the longest name wins a tie), so "Ada, not
  Bo" picks Ada;
- a reply naming no option falls back to round-robin order after the
  previous speaker, so the run goes on deterministically;
- the manager may also end the run by answering with the termination token;
- reaching `max_turns` without the token ends the run with `max_steps`.

The manager's choices are streamed and kept in history like any message,
but participants do not see them (they are about the conversation, not in it).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from chorus.engine.managers.base import (
    AgentCall,
    Decision,
    EndRun,
    GroupView,
    RunAgents,
    RunProgress,
    stop_early,
)


def choose_speaker(reply: str, options: Sequence[tuple[str, str]]) -> str:
    """The option (`(agent_id, name)` pairs, in round-robin order) that `reply` names first, else the first option."""
    best: tuple[int, int, str] | None = None
    for agent_id, name in options:
        match = re.search(rf"(?<!\w){re.escape(name)}(?!\w)", reply, flags=re.IGNORECASE)
        if match is not None:
            key = (match.start(), -len(name), agent_id)
            if best is None or key < best:
                best = key
    if best is not None:
        return best[2]
    return options[0][0]


class Dynamic:
    def next(self, group: GroupView, progress: RunProgress) -> Decision:
        early = stop_early(progress)
        if early is not None:
            return early
        manager = group.manager_agent_id or group.agent_ids[0]
        token = group.config.termination_token
        max_turns = group.config.max_turns or len(group.agent_ids)
        turns = progress.turns
        spoken = [t for t in turns if t.purpose == "speak"]
        previous = spoken[-1].agent_id if spoken else None
        options = self._options(group, previous)
        if turns and turns[-1].purpose == "choose":
            if token in turns[-1].text:
                return EndRun("end_turn")
            speaker = choose_speaker(turns[-1].text, [(a, group.name_of(a)) for a in options])
            hidden = () if manager in group.agent_ids else (manager,)
            return RunAgents((AgentCall(speaker, hidden_senders=hidden),))
        if spoken and token in spoken[-1].text:
            return EndRun("end_turn")
        if len(spoken) >= max_turns:
            return EndRun("max_steps")
        return RunAgents((AgentCall(manager, purpose="choose", instruction=self._ask(group, options, token)),))

    @staticmethod
    def _options(group: GroupView, previous: str | None) -> list[str]:
        """Who may speak next: everyone but the previous speaker, in round-robin order after them."""
        ids = list(group.agent_ids)
        if previous in ids and len(ids) > 1:
            at = ids.index(previous)
            ids = ids[at + 1 :] + ids[:at]
        return ids

    @staticmethod
    def _ask(group: GroupView, options: list[str], token: str) -> str:
        names = ", ".join(group.name_of(a) for a in options)
        return (
            "Choose the most suitable agent to reply to the latest message in the group chat from the "
            f"following options: [{names}]. Do not respond to the messages yourself, your task is only to "
            "decide the next speaker, not to participate. Answer with the agent's name only, or with "
            f"{token} if the conversation is complete."
        )
