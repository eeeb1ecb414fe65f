"""The `llm` port: one streaming call, speaking the requests and events of `chorus.vocabulary`.

Like httpx's transport, the port is one method; retries, usage summing,
time-to-first-token and cancellation live once in the engine and the
driver, not in each adapter. Adapters translate their SDK's errors into
`chorus.errors.ModelError` subclasses, each carrying the run's stop reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from chorus.vocabulary import (
    Finish,
    ModelEvent,
    ModelMessage,
    ModelRequest,
    Reasoning,
    ReasoningDelta,
    TextDelta,
    ToolCallDelta,
    ToolCallRequest,
    ToolSpec,
    Usage,
)

__all__ = [
    "Finish",
    "Model",
    "ModelEvent",
    "ModelMessage",
    "ModelRequest",
    "Reasoning",
    "ReasoningDelta",
    "Script",
    "TextDelta",
    "ToolCallDelta",
    "ToolCallRequest",
    "ToolSpec",
    "Usage",
]


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
