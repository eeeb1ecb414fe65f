"""The streaming response: SSE frames from the tailer, straight to the socket.

Validation and loading happen before this response is built (after the
first byte there are no HTTP errors). When a client of a foreground run
goes away, the run is cancelled, since nobody can resume it; a background
run keeps going and only this reader stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from starlette.responses import StreamingResponse

SSE_HEADERS = {"Cache-Control": "no-cache, no-store", "X-Accel-Buffering": "no", "Connection": "keep-alive"}


def sse_response(frames: AsyncIterator[bytes], *, on_disconnect: Callable[[], None] | None = None) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        finished = False
        try:
            async for chunk in frames:
                yield chunk
            finished = True
        finally:
            if not finished and on_disconnect is not None:
                on_disconnect()

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)
