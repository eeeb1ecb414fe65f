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
     "error_after_tokens": 0,
     "calls": [{"name": "send_message_to_all_agents_in_group",
                "arguments": {"message": "..."}}],   # tool calls of a turn's first step
     "use_tools": true,    # with no `calls`: call each offered tool once (false: never)
     "steps": [[...calls of step 1...], [...of step 2...]]}  # per step of a turn; then text

With no script it behaves like pydantic-ai's `TestModel`: a step whose
context does not end in a tool's return calls each offered tool once, with
arguments valid for the tool's schema (so a supervisor broadcasts); the next
step, or any step without tools, replies with text that names the agent and
counts its turn.
Even with zero delay the stream yields to the event loop after each token,
as a network stream does, so streaming is measured honestly.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson

from chorus.errors import InvalidModelResponse, ModelError, ModelRateLimited, ModelTimeout
from chorus.limits import MAX_SCRIPTED_DELAY_S, MAX_SCRIPTED_ITEMS, MAX_SCRIPTED_TEXT_CHARS, MAX_SCRIPTED_TOKENS
from chorus.llm.base import (
    Finish,
    ModelEvent,
    ModelRequest,
    ReasoningDelta,
    Script,
    TextDelta,
    ToolCallDelta,
    ToolSpec,
    Usage,
)
from chorus.tokens import count_request, count_text

SPEECH_TOOL = "send_message"
"""The tool legacy Letta agents speak through (`chorus.engine.tools.SPEECH_TOOL`)."""

_ERRORS: dict[str, type[ModelError]] = {
    "llm_api_error": ModelError,
    "rate_limit": ModelRateLimited,
    "timeout": ModelTimeout,
    "invalid_llm_response": InvalidModelResponse,
}


def parse_script(metadata: Mapping[str, Any] | None) -> Script:
    """Read a `Script` from agent metadata; unknown keys are ignored, bad values are a `ValueError`.

    Every knob that makes the model loop or sleep is bounded (`chorus.limits`): the
    script is tenant input, and one agent's reply must not hold a worker for hours."""
    raw = (metadata or {}).get("scripted") or {}
    if not isinstance(raw, Mapping):
        raise ValueError("metadata.scripted must be an object")
    replies = raw.get("replies", [])
    steps = raw.get("steps")
    if not isinstance(replies, list) or (steps is not None and not isinstance(steps, list)):
        raise ValueError("metadata.scripted.replies and steps must be lists")
    if len(replies) > MAX_SCRIPTED_ITEMS or len(steps or []) > MAX_SCRIPTED_ITEMS:
        raise ValueError(f"metadata.scripted.replies and steps may have at most {MAX_SCRIPTED_ITEMS} items")
    script = Script(
        replies=[str(r) for r in replies],
        tokens=int(raw.get("tokens", 8)),
        delay_s=float(raw.get("delay_s", 0.0)),
        reasoning=raw.get("reasoning"),
        error=raw.get("error"),
        error_after_tokens=int(raw.get("error_after_tokens", 0)),
        calls=_calls(raw.get("calls")),
        steps=[_calls(step) or [] for step in steps] if steps is not None else None,
        use_tools=bool(raw.get("use_tools", True)),
    )
    if not 1 <= script.tokens <= MAX_SCRIPTED_TOKENS or not 0 <= script.error_after_tokens <= MAX_SCRIPTED_TOKENS:
        raise ValueError(f"metadata.scripted: tokens must be 1..{MAX_SCRIPTED_TOKENS}, error_after_tokens >= 0")
    if not (math.isfinite(script.delay_s) and 0 <= script.delay_s <= MAX_SCRIPTED_DELAY_S):
        raise ValueError(f"metadata.scripted.delay_s must be a number of seconds from 0 to {MAX_SCRIPTED_DELAY_S:g}")
    if script.reasoning is not None and not isinstance(script.reasoning, str):
        raise ValueError("metadata.scripted.reasoning must be a string")
    texts = [*script.replies, script.reasoning or ""]
    if any(len(text) > MAX_SCRIPTED_TEXT_CHARS for text in texts):
        raise ValueError(
            f"metadata.scripted replies and reasoning may have at most {MAX_SCRIPTED_TEXT_CHARS} characters"
        )
    if script.error is not None and script.error not in _ERRORS:
        raise ValueError(f"metadata.scripted.error must be one of {sorted(_ERRORS)}")
    return script


def _calls(raw: Any) -> list[tuple[str, dict[str, Any]]] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) > MAX_SCRIPTED_ITEMS:
        raise ValueError(f"metadata.scripted.calls must be a list of at most {MAX_SCRIPTED_ITEMS} {{name, arguments}}")
    calls = []
    for call in raw:
        if not isinstance(call, Mapping) or not isinstance(call.get("name"), str):
            raise ValueError("each of metadata.scripted.calls needs a string name")
        arguments = call.get("arguments", {})
        if not isinstance(arguments, Mapping):
            raise ValueError("metadata.scripted.calls[].arguments must be an object")
        calls.append((call["name"], dict(arguments)))
    return calls


def _tool_rounds(request: ModelRequest) -> int:
    """Which step of its turn the agent is at: its own messages since the last user message
    (a trailing system reminder, such as a tool it must still call, is not a new turn)."""
    messages = list(request.messages)
    if messages and messages[-1].role == "system":
        messages.pop()
    count = 0
    for message in reversed(messages):
        if message.role not in ("assistant", "tool"):
            break
        count += message.role == "assistant"
    return count


def _example(schema: Mapping[str, Any], text: str) -> Any:
    """A value valid for a (simple) JSON schema; strings carry `text` so a broadcast says something."""
    kind = schema.get("type")
    if "enum" in schema:
        return schema["enum"][0]
    if kind == "object":
        props = schema.get("properties", {})
        return {name: _example(props.get(name, {}), text) for name in schema.get("required", list(props))}
    return {"integer": 0, "number": 0, "boolean": True, "array": [], "null": None}.get(str(kind), text)


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
        turn = sum(1 for m in request.messages if m.role == "assistant" and not m.tool_calls)
        if self.script.replies:
            return _tokens_of(self.script.replies[turn % len(self.script.replies)])
        first = f"{request.agent_name} (turn {turn + 1}):"
        return [first] + [f" tok{i}" for i in range(self.script.tokens - 1)]

    def tool_calls(self, request: ModelRequest) -> list[tuple[str, dict[str, Any]]]:
        """The calls this step makes: the script's `steps[k]` at the turn's k-th step; else none once
        a tool has answered, the script's `calls`, or one per offered tool. An agent offered
        `send_message` (a legacy Letta agent) says its reply through it, after its other tools."""
        if self.script.steps is not None:
            k = _tool_rounds(request)
            return self.script.steps[k] if k < len(self.script.steps) else []
        speech = next((t for t in request.tools if t.name == SPEECH_TOOL), None)
        say = [] if speech is None else [(speech.name, self._speech(request, speech))]
        if request.messages and request.messages[-1].role == "tool":
            return say
        if self.script.calls is not None:
            return self.script.calls
        others = [tool for tool in request.tools if tool is not speech]
        if not self.script.use_tools or not others:
            return say
        task = next((m.content for m in reversed(request.messages) if m.role == "user"), "")
        return [(tool.name, _example(tool.parameters, task)) for tool in others]

    def _speech(self, request: ModelRequest, speech: ToolSpec) -> dict[str, Any]:
        kwarg = (speech.parameters.get("required") or ["message"])[0]
        return {kwarg: "".join(self.reply_tokens(request))}

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        self.last_request = request
        script = self.script
        # the request is measured for its usage after the answer, as a provider reports it: counting
        # a long context is no work to do before the first token
        if request.purpose == "summary":
            async for event in self._summarise(request):
                yield event
            return
        calls = self.tool_calls(request)
        if calls:
            async for event in self._call_tools(request, calls):
                yield event
            return
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
        yield Usage(prompt_tokens=count_request(request), completion_tokens=sent)
        yield Finish("end_turn")

    async def _summarise(self, request: ModelRequest) -> AsyncIterator[ModelEvent]:
        """A summary request's answer: how much it read and the gist of its last line, short and deterministic."""
        lines = request.messages[-1].content.splitlines() if request.messages else []
        gist = " ".join((lines[-1] if lines else "").split()[:12])
        pieces = _tokens_of(f"Summary of {len(lines)} lines, ending with: {gist}")
        for piece in pieces:
            await self._pace()
            yield TextDelta(piece)
        yield Usage(prompt_tokens=count_request(request), completion_tokens=count_text("".join(pieces)))
        yield Finish("end_turn")

    async def _call_tools(
        self, request: ModelRequest, calls: list[tuple[str, dict[str, Any]]]
    ) -> AsyncIterator[ModelEvent]:
        """Stream tool calls as providers do: id and name first, the arguments in pieces."""
        if self.script.error is not None and self.script.error_after_tokens == 0:
            raise _ERRORS[self.script.error](f"scripted {self.script.error} before any token")
        step = len(request.messages)
        for index, (name, arguments) in enumerate(calls):
            await self._pace()
            yield ToolCallDelta(index, id=f"call_{request.agent_id[-12:]}_{step}_{index}", name=name)
            payload = orjson.dumps(arguments).decode()
            half = len(payload) // 2
            for piece in (payload[:half], payload[half:]):
                await self._pace()
                yield ToolCallDelta(index, arguments=piece)
        yield Usage(prompt_tokens=count_request(request), completion_tokens=3 * len(calls))
        yield Finish("tool_use")

    async def _pace(self) -> None:
        await asyncio.sleep(self.script.delay_s)
