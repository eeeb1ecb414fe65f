"""Supervisor: a manager agent broadcasts to the workers and answers from their replies.

Letta's semantics: the manager (`manager_agent_id`) gets the tool
`send_message_to_all_agents_in_group(message)`; calling it sends the message
to every other agent of the group in parallel and returns their replies as a
list; the manager then answers. Letta forces the broadcast with tool rules
and its implementation has been broken upstream since 2025; here the tool is
offered on every manager turn, and a manager that answers without
broadcasting simply ends the run with its answer.

Rounds: manager turn → (stopped at the broadcast) → one parallel round of
worker turns, each answering that call → manager turn opened by the
broadcast's return → … until the manager answers without broadcasting. A
failing worker does not stop the run: its error is its entry in the
return. Broadcast rounds are bounded by the request's `max_steps`.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from chorus.engine.managers.base import (
    AWAITING_TOOL,
    AgentCall,
    Decision,
    EndRun,
    GroupView,
    RunAgents,
    RunProgress,
    ToolReturn,
    TurnRecord,
)
from chorus.engine.tools import BROADCAST


class Supervisor:
    def next(self, group: GroupView, progress: RunProgress) -> Decision:
        manager = group.manager_agent_id or group.agent_ids[0]
        turns = progress.turns
        if not turns:
            return RunAgents((AgentCall(manager, tools=(BROADCAST,)),))
        last = turns[-1]
        if last.reply_to is None:
            if last.stop_reason != AWAITING_TOOL or last.pending is None:
                return EndRun(last.stop_reason)
            broadcasts = sum(1 for t in turns if t.pending is not None)
            if broadcasts > progress.max_steps:
                return EndRun("max_steps")
            call_id = last.pending.tool_call_id
            workers = group.members_besides_manager()
            return RunAgents(tuple(AgentCall(w, purpose="reply", reply_to=call_id) for w in workers))
        origin = _origin(turns, last.reply_to)
        assert origin.pending is not None
        replies = [t for t in turns if t.reply_to == last.reply_to]
        result = ToolReturn(origin.pending.tool_call_id, origin.pending.name, broadcast_replies(group, replies))
        return RunAgents((AgentCall(origin.agent_id, tools=(BROADCAST,), tool_return=result),))


def _origin(turns: tuple[TurnRecord, ...], call_id: str) -> TurnRecord:
    """The turn that made the orchestrated call `call_id` (replies always follow it)."""
    for turn in reversed(turns):
        if turn.pending is not None and turn.pending.tool_call_id == call_id:
            return turn
    raise ValueError(f"no turn made tool call {call_id}")


def broadcast_replies(group: GroupView, replies: Iterable[TurnRecord]) -> str:
    """The broadcast's return, shaped as Letta's: a list of JSON strings, one per worker, in call order.

    Each is `{"agent_id", "name", "response_messages"}` (`["<no response>"]` when the
    worker said nothing); a worker whose model failed has `error` instead, so the manager
    can carry on. The list itself is JSON too, so it parses both as JSON and, as Letta's
    own tests read it, as a Python literal.
    """
    out = []
    for turn in replies:
        entry: dict[str, object] = {"agent_id": turn.agent_id, "name": group.name_of(turn.agent_id)}
        if turn.error is not None:
            entry["error"] = turn.error
        else:
            entry["response_messages"] = [turn.text] if turn.text else ["<no response>"]
        out.append(orjson.dumps(entry).decode())
    return orjson.dumps(out).decode()
