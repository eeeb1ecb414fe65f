"""The physical limit for `stream_overhead.py`: a bare Starlette SSE endpoint, nothing else.

It streams `n` token events shaped like Chorus's assistant chunks (same
fields, same JSON size, serialised per event) and `[DONE]`, yielding to the
event loop once per token exactly as the scripted model does.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

TEMPLATE = {
    "id": "message-0df65971-0537-4e23-b67d-1b2a41f6ebd6",
    "date": "2026-11-24T06:33:05+00:00",
    "name": "Ada",
    "message_type": "assistant_message",
    "otid": "0df65971-0537-4e23-b67d-1b2a41f6eb80",
    "sender_id": "agent-937bcec5-8b32-4207-9f37-4867b17f0482",
    "step_id": "step-5acd75c7-54dd-4799-a319-83942935383a",
    "is_err": None,
    "seq_id": 0,
    "run_id": "run-1c44a6d6-e8fd-45bb-b9b6-9d52d6b8b8bf",
    "content": "",
}


async def stream(request: Request) -> StreamingResponse:
    n = int(request.query_params.get("n", "600"))

    async def frames() -> AsyncIterator[bytes]:
        for i in range(n):
            await asyncio.sleep(0)
            event = {**TEMPLATE, "seq_id": i + 1, "content": f" tok{i}"}
            yield f"id: {i + 1}\ndata: {json.dumps(event, separators=(',', ':'))}\n\n".encode()
        yield b"data: [DONE]\n\n"

    return StreamingResponse(frames(), media_type="text/event-stream")


app = Starlette(routes=[Route("/stream", stream, methods=["POST"])])
