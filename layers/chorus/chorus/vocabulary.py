"""The words every layer shares: what goes to and comes from a model, and how a run stops.

They live below `engine/` and `llm/` so both speak them without one importing the
other: the engine folds model events into steps, the adapters produce them, the
runs layer ends runs with the stop reasons defined here, once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

StopReason = Literal[
    "end_turn",
    "max_steps",
    "tool_rule",
    "requires_approval",
    "cancelled",
    "error",
    "llm_api_error",
    "invalid_llm_response",
    "invalid_tool_call",
    "no_tool_call",
    "max_tokens_exceeded",
]
"""Why a turn or a run stopped, in Letta's words."""

CONTINUE_STOP_REASONS: frozenset[str] = frozenset({"end_turn", "max_steps", "tool_rule"})
"""A turn that ended this way lets the group go on; any other reason ends the run with it."""

FAILED_STOP_REASONS: frozenset[str] = frozenset(
    {"error", "llm_api_error", "invalid_llm_response", "invalid_tool_call", "no_tool_call", "max_tokens_exceeded"}
)
"""A run that stopped this way has status `failed` (a cancel is `cancelled`, the rest `completed`)."""

STOP_AFTER_FINISH: dict[str, str] = {
    "end_turn": "end_turn",
    "tool_use": "end_turn",
    "max_tokens": "max_tokens_exceeded",
}
"""The stop reason of a turn whose model's last answer ended with a `Finish` of this reason."""


@dataclass(frozen=True, slots=True)
class RunFailure:
    """What a failed run reports in its `error_message` event."""

    error_type: str
    message: str
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class ToolSpec:
    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments."""


@dataclass(frozen=True, slots=True)
class ModelMessage:
    """One message of the model's context, already seen from the calling agent's side."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str
    name: str | None = None
    tool_call_id: str | None = None
    tool_calls: tuple[ToolCallRequest, ...] = ()
    reasoning: tuple[Reasoning, ...] = ()
    """The agent's own signed reasoning before this answer (providers with thinking want it back)."""


@dataclass(frozen=True, slots=True)
class Reasoning:
    text: str
    signature: str | None = None


@dataclass(frozen=True, slots=True)
class ToolCallRequest:
    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ModelRequest:
    model: str
    """The model name, without the `provider/` prefix."""
    agent_id: str
    agent_name: str
    system: str
    messages: tuple[ModelMessage, ...]
    tools: tuple[ToolSpec, ...] = ()
    max_tokens: int | None = None
    enable_reasoning: bool = False
    purpose: Literal["step", "summary"] = "step"
    """A step of an agent's turn, or the call that summarises history (see `chorus.engine.compaction`)."""


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str
    kind: Literal["text"] = "text"


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    text: str
    signature: str | None = None
    kind: Literal["reasoning"] = "reasoning"


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A piece of one tool call; `index` groups the pieces of a call, `id`/`name` come first."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    kind: Literal["tool_call"] = "tool_call"


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_input_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    kind: Literal["usage"] = "usage"

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.prompt_tokens + other.prompt_tokens,
            self.completion_tokens + other.completion_tokens,
            self.cached_input_tokens + other.cached_input_tokens,
            self.cache_write_tokens + other.cache_write_tokens,
            self.reasoning_tokens + other.reasoning_tokens,
        )


@dataclass(frozen=True, slots=True)
class Finish:
    reason: Literal["end_turn", "tool_use", "max_tokens"] = "end_turn"
    kind: Literal["finish"] = "finish"


ModelEvent = TextDelta | ReasoningDelta | ToolCallDelta | Usage | Finish
"""What a model stream yields. A stream ends after at most one `Finish`."""
