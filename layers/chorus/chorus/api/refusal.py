"""The JSON error a pure ASGI middleware answers with, in the shape of every error of the app."""

from __future__ import annotations

import orjson
from starlette.types import Send


async def refuse(send: Send, status: int, detail: str, *, close: bool = False) -> None:
    """Send `{"detail": ...}` with `status`; `close` asks the client to drop the connection (a body is unread)."""
    body = orjson.dumps({"detail": detail})
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
