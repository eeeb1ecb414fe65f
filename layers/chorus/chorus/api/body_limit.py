"""ASGI middleware: a request body longer than `HttpPolicy.max_body_bytes` is refused (413) before it is read.

A declared `Content-Length` over the limit is answered at once, without
reading a byte of the body (the server then closes the connection). A body
sent without one (chunked) is counted as it arrives, and reading stops at the
first chunk past the limit: the route gets a 413 instead of its body, so no
more than the limit (plus one chunk) is ever held in memory. A body of the
declared length is all the server reads (uvicorn frames it), so it is not counted.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chorus.api.http_policy import HttpPolicy
from chorus.api.refusal import refuse


class BodyTooLarge(HTTPException):
    """Raised from `receive` (an HTTPException: FastAPI's body parsing passes it on to the app's handler)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"Request body is larger than {limit} bytes (CHORUS_MAX_BODY_BYTES).")


class BodyLimit:
    def __init__(self, app: ASGIApp, policy: HttpPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.policy.max_body_bytes
        declared = next((value for name, value in scope["headers"] if name == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await refuse(send, 400, "Content-Length must be a decimal number of bytes.", close=True)
                return
            if int(declared) > limit:
                await refuse(send, 413, BodyTooLarge(limit).detail, close=True)
                return
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await refuse(send, 413, exc.detail, close=True)
