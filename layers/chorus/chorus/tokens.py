"""How many tokens a model request takes, and how many a model's context holds.

Pure, below `engine/` and `llm/` so the engine (deciding when to compact), the
offline model (reporting usage) and the test fakes (refusing over-long
requests) all count the same way.

The count is an estimate, on purpose: `tiktoken` installs from PyPI but
downloads its encodings at run time, which a Lambda without internet access (and
this project's offline tests) cannot do, and the other providers publish no
local tokenizer at all. The estimate is one token per three UTF-8 bytes, plus a
few tokens of framing per message and per tool. Byte-pair tokenizers average
about four characters of English or code per token, so this over-counts such
text by about a third (the safe side: compaction comes a little early); text of
three-byte characters (CJK) counts one token per character, about what the
tokenizers give. Only text dense in rare symbols or emoji can come out under
the real count, which the room left for the answer (`answer_reserve`) absorbs.
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from chorus.vocabulary import ModelMessage, ModelRequest, ToolSpec

BYTES_PER_TOKEN = 3
MESSAGE_OVERHEAD = 4
"""Tokens of framing per message (role, separators), as OpenAI's own accounting counts them."""
TOOL_OVERHEAD = 8
REQUEST_OVERHEAD = 3

DEFAULT_CONTEXT_WINDOW = 32_000
"""The window of a model Chorus knows nothing about (the `default_context_window` setting overrides it)."""

KNOWN_WINDOWS: tuple[tuple[str, int], ...] = (
    ("gpt-4.1", 1_047_576),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("gpt-5", 400_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4-mini", 200_000),
    ("gpt-3.5-turbo", 16_385),
    ("claude", 200_000),
    ("anthropic.claude", 200_000),
    ("us.anthropic.claude", 200_000),
    ("amazon.nova", 300_000),
    ("meta.llama3", 128_000),
)
"""Context windows by model-name prefix (the part after `provider/`), longest prefix wins."""

MIN_CONTEXT_WINDOW = 512
MAX_CONTEXT_WINDOW = 10_000_000
"""Bounds of an agent's `context_window_limit`: below the minimum no system prompt and answer fit."""


def count_text(text: str) -> int:
    """Tokens of `text` (see the module's note on the estimate)."""
    size = len(text.encode()) if not text.isascii() else len(text)
    return -(-size // BYTES_PER_TOKEN)


def count_message(message: ModelMessage) -> int:
    tokens = MESSAGE_OVERHEAD + count_text(message.content)
    for call in message.tool_calls:
        tokens += MESSAGE_OVERHEAD + count_text(call.name) + count_text(call.arguments)
    for thought in message.reasoning:
        tokens += count_text(thought.text)
    return tokens


def count_tools(tools: Iterable[ToolSpec]) -> int:
    return sum(
        TOOL_OVERHEAD + count_text(t.name) + count_text(t.description) + count_text(orjson.dumps(t.parameters).decode())
        for t in tools
    )


def count_request(request: ModelRequest) -> int:
    """Tokens of the whole request: system prompt, messages and tool definitions."""
    return count_fixed(request) + sum(count_message(m) for m in request.messages)


def count_fixed(request: ModelRequest) -> int:
    """Tokens of the request but its messages: framing, system prompt and tool definitions."""
    return REQUEST_OVERHEAD + MESSAGE_OVERHEAD + count_text(request.system) + count_tools(request.tools)


def model_window(model: str, fallback: int = DEFAULT_CONTEXT_WINDOW) -> int:
    """The context window of the model handle `provider/model` (or a bare model name)."""
    name = model.partition("/")[2] or model
    best = ""
    window = fallback
    for prefix, size in KNOWN_WINDOWS:
        if name.startswith(prefix) and len(prefix) > len(best):
            best, window = prefix, size
    return window


def answer_reserve(window: int) -> int:
    """Tokens kept free for the model's answer: a quarter of the window, at most 8,192."""
    return min(8_192, window // 4)
