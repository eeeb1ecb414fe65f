"""The `llm` port: one streaming call, a handful of event types.

Like httpx's transport, the port is one method; retries, usage summing,
time-to-first-token and cancellation live once in the engine and the
driver, not in each adapter. Adapters translate their SDK's errors into
`chorus.errors.ModelError` subclasses, each carrying the run's stop reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


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


class Model(Protocol):
    """A chat model that streams. One instance may serve many concurrent calls."""

    @property
    def handle(self) -> str:
        """`provider/model`."""

    def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """Stream the model's answer; raises `ModelError` subclasses on failure."""


@dataclass(slots=True)
class Script:
    """Per-agent behaviour of the scripted model (see `chorus.llm.scripted`)."""

    replies: list[str] = field(default_factory=list)
    tokens: int = 8
    delay_s: float = 0.0
    reasoning: str | None = None
    error: str | None = None
    error_after_tokens: int = 0
    calls: list[tuple[str, dict[str, Any]]] | None = None
    """Tool calls of each turn's first step; None: call each offered tool once (see `use_tools`)."""
    use_tools: bool = True
    steps: list[list[tuple[str, dict[str, Any]]]] | None = None
    """Tool calls per step of a turn (step k makes `steps[k]`); a text reply after the last."""
