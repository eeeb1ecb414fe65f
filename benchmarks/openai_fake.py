"""An OpenAI-compatible Chat Completions server with zero model delay, for `floor.py`.

Every `POST /v1/chat/completions` streams the same answer as OpenAI frames it:
a role chunk, `TOKENS` content chunks (`?tokens=` on the base URL is not
possible with the SDK, so the count is the process's `OPENAI_FAKE_TOKENS`, 20
unless set), a finish chunk, a usage
chunk and `[DONE]`, each its own SSE event, yielding to the loop between them
as a network would. Run it with uvicorn in its own process so neither server
under test shares its interpreter with it.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

TOKENS = int(os.environ.get("OPENAI_FAKE_TOKENS", "20"))


def _chunk(delta: dict[str, Any] | None, finish: str | None = None, usage: dict[str, int] | None = None) -> bytes:
    choices = [] if delta is None else [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1764000000,
        "model": "gpt-4o-mini",
        "system_fingerprint": "fp_1",
        "choices": choices,
        "usage": usage,
    }
    return b"data: " + json.dumps(body).encode() + b"\n\n"


ANSWER = [
    _chunk({"role": "assistant", "content": "", "refusal": None}),
    *(_chunk({"content": f" word{i}"}) for i in range(TOKENS)),
    _chunk({}, "stop"),
    _chunk(None, usage={"prompt_tokens": 40, "completion_tokens": TOKENS, "total_tokens": 40 + TOKENS}),
    b"data: [DONE]\n\n",
]


async def completions(request: Request) -> StreamingResponse:
    await request.body()

    async def body() -> AsyncIterator[bytes]:
        for piece in ANSWER:
            yield piece
            await asyncio.sleep(0)

    return StreamingResponse(body(), media_type="text/event-stream")


app = Starlette(routes=[Route("/v1/chat/completions", completions, methods=["POST"])])
