"""Opt-in calls to the real providers: `CHORUS_LIVE_TESTS=1` plus the provider's credentials.

    CHORUS_LIVE_TESTS=1 OPENAI_API_KEY=... .venv/bin/pytest tests/providers/test_live.py

Models default to small ones and can be changed with `CHORUS_LIVE_<PROVIDER>_MODEL`;
`OPENAI_BASE_URL` alone (Ollama, vLLM) also enables the OpenAI test. These cost
money or need a local server, so they are skipped everywhere else.
"""

from __future__ import annotations

import json
import os

import pytest

from chorus.llm.base import Finish, ModelMessage, TextDelta, ToolCallDelta, ToolSpec, Usage
from chorus.llm.resolve import resolve_model
from support.provider_fakes import collect, request

LIVE = os.environ.get("CHORUS_LIVE_TESTS") == "1"
PROVIDERS = [
    ("openai", "gpt-4o-mini", ("OPENAI_API_KEY", "OPENAI_BASE_URL")),
    ("anthropic", "claude-3-5-haiku-latest", ("ANTHROPIC_API_KEY",)),
    ("bedrock", "amazon.nova-micro-v1:0", ("AWS_ACCESS_KEY_ID", "AWS_PROFILE", "AWS_CONTAINER_CREDENTIALS_FULL_URI")),
]
WEATHER = ToolSpec(
    "get_weather",
    "The current weather of a city.",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


def live_handles() -> list[object]:
    params: list[object] = []
    for provider, default, credentials in PROVIDERS:
        model = os.environ.get(f"CHORUS_LIVE_{provider.upper()}_MODEL", default)
        enabled = LIVE and any(os.environ.get(name) for name in credentials)
        reason = f"set CHORUS_LIVE_TESTS=1 and one of {', '.join(credentials)}"
        params.append(pytest.param(f"{provider}/{model}", marks=pytest.mark.skipif(not enabled, reason=reason)))
    return params


@pytest.mark.parametrize("handle", live_handles())
async def test_live_text_reply(handle: str) -> None:
    model = resolve_model(handle)
    req = request(
        ModelMessage("user", "Reply with the single word: pong"), model=handle.partition("/")[2], max_tokens=32
    )

    events = await collect(model, req)

    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert "pong" in text.lower()
    usage = [e for e in events if isinstance(e, Usage)]
    assert usage and usage[0].prompt_tokens > 0 and usage[0].completion_tokens > 0
    assert events[-1] == Finish("end_turn")


@pytest.mark.parametrize("handle", live_handles())
async def test_live_tool_call(handle: str) -> None:
    model = resolve_model(handle)
    req = request(
        ModelMessage("user", "What is the weather in Paris? Use the tool."),
        model=handle.partition("/")[2],
        tools=(WEATHER,),
        max_tokens=256,
    )

    events = await collect(model, req)

    calls = [e for e in events if isinstance(e, ToolCallDelta)]
    assert calls and calls[0].name == "get_weather" and calls[0].id
    arguments = json.loads("".join(c.arguments for c in calls if c.index == calls[0].index))
    assert "paris" in arguments["city"].lower()
    assert events[-1] == Finish("tool_use")
