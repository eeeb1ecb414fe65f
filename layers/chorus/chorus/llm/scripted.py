"""`scripted`: the offline model, deterministic, for tests, demos and benchmarks.

Named plainly so it is never mistaken for a real provider: the server
announces at start-up when it falls back to it. Its behaviour per agent comes
from the agent's `metadata["scripted"]`, so tests and demos script agents
over plain HTTP:

    {"replies": ["first answer", "second answer"],  # cycled by turn
     "tokens": 8,          # length of the default reply, in tokens
     "delay_s": 0.0,       # pause before each token (a real model's pace)
     "reasoning": "...",   # streamed as reasoning before the reply
     "error": "llm_api_error" | "rate_limit" | "timeout" | "invalid_llm_response",
     "error_after_tokens": 0}

With no script the reply names the agent and counts its turn, like
pydantic-ai's `TestModel`. Tool-calling scripts arrive with tools (issue 5).
Even with zero delay the stream yields to the event loop after each token,
as a network stream does, so streaming is measured honestly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any

from chorus.errors import InvalidModelResponse, ModelError, ModelRateLimited, ModelTimeout
from chorus.llm.base import Finish, ModelEvent, ModelRequest, ReasoningDelta, Script, TextDelta, Usage

_ERRORS: dict[str, type[ModelError]] = {
    "llm_api_error": ModelError,
    "rate_limit": ModelRateLimited,
    "timeout": ModelTimeout,
    "invalid_llm_response": InvalidModelResponse,
}


def parse_script(metadata: Mapping[str, Any] | None) -> Script:
    """Read a `Script` from agent metadata; unknown keys are ignored, bad values are a `ValueError`."""
    raw = (metadata or {}).get("scripted") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("metadata.scripted must be an object")
    script = Script(
        replies=[str(r) for r in raw.get("replies", [])],
        tokens=int(raw.get("tokens", 8)),
        delay_s=float(raw.get("delay_s", 0.0)),
        reasoning=raw.get("reasoning"),
        error=raw.get("error"),
        error_after_tokens=int(raw.get("error_after_tokens", 0)),
    )
    if script.tokens < 1 or script.delay_s < 0 or script.error_after_tokens < 0:
        raise ValueError("metadata.scripted: tokens must be >= 1, delays and counts >= 0")
    if script.error is not None and script.error not in _ERRORS:
        raise ValueError(f"metadata.scripted.error must be one of {sorted(_ERRORS)}")
    return script


def _tokens_of(text: str) -> list[str]:
    words = text.split(" ")
    return [words[0]] + [" " + w for w in words[1:]]


class ScriptedModel:
    """The offline model for one agent's script."""

    __test__ = False

    def __init__(self, name: str = "default", script: Script | None = None) -> None:
        self._name = name
        self.script = script or Script()
        self.last_request: ModelRequest | None = None

    @property
    def handle(self) -> str:
        return f"scripted/{self._name}"

    def reply_tokens(self, request: ModelRequest) -> list[str]:
        """The tokens this agent answers `request` with."""
        turn = sum(1 for m in request.messages if m.role == "assistant")
        if self.script.replies:
            return _tokens_of(self.script.replies[turn % len(self.script.replies)])
        first = f"{request.agent_name} (turn {turn + 1}):"
        return [first] + [f" tok{i}" for i in range(self.script.tokens - 1)]

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.last_request = request
        script = self.script
        prompt_tokens = len(request.system.split()) + sum(len(m.content.split()) for m in request.messages)
        sent = 0
        if script.reasoning:
            for piece in _tokens_of(script.reasoning):
                await self._pace()
                yield ReasoningDelta(piece)
        for piece in self.reply_tokens(request):
            if script.error is not None and sent >= script.error_after_tokens:
                raise _ERRORS[script.error](f"scripted {script.error} after {sent} tokens")
            await self._pace()
            yield TextDelta(piece)
            sent += 1
        if script.error is not None:
            raise _ERRORS[script.error](f"scripted {script.error} after {sent} tokens")
        yield Usage(prompt_tokens=prompt_tokens, completion_tokens=sent)
        yield Finish("end_turn")

    async def _pace(self) -> None:
        await asyncio.sleep(self.script.delay_s)
