"""Built-in tools the orchestrator offers to agents, and which of them it carries out itself.

`send_message_to_all_agents_in_group` is Letta's supervisor tool. Chorus does
not run it inside the manager's step: the step stops at the call
(`AWAITING_TOOL`), the supervisor plans the broadcast as a round of parallel
worker turns, and the replies come back to the manager as the tool's
return. So the fan-out is one `Map` in Step Functions and one bounded
`gather` in process, from the same plan.
"""

from __future__ import annotations

from typing import Any

import orjson

from chorus.vocabulary import ToolSpec

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

SPEECH_TOOL = "send_message"
"""The tool legacy agents speak through (its default name; requests may rename it)."""

LEGACY_AGENT_TYPES = frozenset({"memgpt_agent", "memgpt_v2_agent"})
"""Letta's agent types that speak only through a tool (`send_message`), not in plain text."""


def send_message_spec(name: str = SPEECH_TOOL, kwarg: str = "message") -> ToolSpec:
    """The tool a legacy agent speaks through; calling it ends the agent's turn."""
    return ToolSpec(
        name=name,
        description="Sends a message to the human user (and the group). Calling it ends your turn.",
        parameters={
            "type": "object",
            "properties": {
                kwarg: {
                    "type": "string",
                    "description": "Message contents. All unicode (including emojis) are supported.",
                }
            },
            "required": [kwarg],
        },
    )


def tool_arguments(arguments: str) -> dict[str, Any] | None:
    """A tool call's arguments as the JSON object they must be, or None if they are not one."""
    try:
        parsed = orjson.loads(arguments or "{}")
    except orjson.JSONDecodeError:
        return None
    return parsed if isinstance(parsed, dict) else None
