"""The floor for `floor.py`: the least a server can do to answer a 3-agent round robin over SSE.

`POST /stream` makes the same three streaming Chat Completions calls Chorus
makes for a round-robin group of three (each agent sees the conversation so
far), with the `openai` client built exactly as Chorus builds it (one
`AsyncOpenAI` per process, `max_retries=0`, the same timeout, `OPENAI_BASE_URL`
from the environment), and re-streams every token as an SSE event shaped like
Chorus's assistant chunk, then `[DONE]`. No store, no validation, no log:
what is left is the HTTP server, the SDK and the fake model.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator

import openai
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

AGENTS = 3
client = openai.AsyncOpenAI(api_key="not-needed", base_url=os.environ["OPENAI_BASE_URL"], timeout=60.0, max_retries=0)


async def stream(request: Request) -> StreamingResponse:
    text = (await request.json())["input"]

    async def frames() -> AsyncIterator[bytes]:
        conversation: list[dict[str, str]] = [{"role": "user", "content": text}]
        seq = 0
        for agent in range(AGENTS):
            messages = [{"role": "system", "content": f"You are A{agent}."}, *conversation]
            said: list[str] = []
            answer = await client.chat.completions.create(
                model="gpt-4o-mini",
                messages=messages,  # type: ignore[arg-type]
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in answer:
                if chunk.choices and chunk.choices[0].delta.content:
                    seq += 1
                    said.append(chunk.choices[0].delta.content)
                    event = {
                        "id": f"message-{agent}",
                        "message_type": "assistant_message",
                        "name": f"A{agent}",
                        "seq_id": seq,
                        "content": chunk.choices[0].delta.content,
                    }
                    yield f"data: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
            conversation.append({"role": "user", "content": f"A{agent}: {''.join(said)}"})
        yield b"data: [DONE]\n\n"

    return StreamingResponse(frames(), media_type="text/event-stream")


app = Starlette(routes=[Route("/stream", stream, methods=["POST"])])
