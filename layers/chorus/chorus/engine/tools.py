"""Built-in tools the orchestrator offers to agents, and which of them it carries out itself.

`send_message_to_all_agents_in_group` is Letta's supervisor tool. Chorus does
not run it inside the manager's step: the step stops at the call
(`AWAITING_TOOL`), the supervisor plans the broadcast as a round of parallel
worker turns, and the replies come back to the manager as the tool's
return. So the fan-out is one `Map` in Step Functions and one bounded
`gather` in process, from the same plan.
"""

from __future__ import annotations

from chorus.llm.base import ToolSpec

BROADCAST = "send_message_to_all_agents_in_group"

BROADCAST_SPEC = ToolSpec(
    name=BROADCAST,
    description=(
        "Sends a message to all agents within the same multi-agent group, in parallel, and returns "
        "their replies as a list (one entry per agent, in the group's order)."
    ),
    parameters={
        "type": "object",
        "properties": {
            "message": {"type": "string", "description": "The content of the message to send to every agent."}
        },
        "required": ["message"],
        "additionalProperties": False,
    },
)

BUILT_IN: dict[str, ToolSpec] = {BROADCAST: BROADCAST_SPEC}
"""Built-in tools by name."""

ORCHESTRATED = frozenset({BROADCAST})
"""Tools whose call ends the step and is carried out by the manager's next round."""
