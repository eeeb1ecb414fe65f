"""An in-process HTTP client for an ASGI app whose streamed responses can be read a chunk at a time and dropped.

httpx's `ASGITransport` buffers a whole body before returning it, so it can
neither read a stream as it comes nor hang up in the middle. This client
calls the app directly: `receive()` hands over the request body and then
blocks until the client hangs up (`http.disconnect`, what uvicorn sends when a
socket closes), `send()` queues each body chunk. `kill()` stands for the
server process dying: the app's task is cancelled and the reader sees the
connection reset.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [MutableMapping[str, Any], Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Any
]


class ConnectionLost(Exception):
    """The server went away before the response ended."""


class Connection:
    """One request to the app and its response, read chunk by chunk."""

    def __init__(self, app: ASGIApp, method: str, path: str, body: bytes, headers: dict[str, str]) -> None:
        self.status: int | None = None
        self._started = asyncio.Event()
        self._hung_up = asyncio.Event()
        self._chunks: asyncio.Queue[bytes | BaseException | None] = asyncio.Queue()
        raw_path, _, query = path.partition("?")
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        sent_body = False

        async def receive() -> Message:
            nonlocal sent_body
            if not sent_body:
                sent_body = True
                return {"type": "http.request", "body": body, "more_body": False}
            await self._hung_up.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.status = int(message["status"])
                self._started.set()
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    self._chunks.put_nowait(bytes(message["body"]))
                if not message.get("more_body", False):
                    self._chunks.put_nowait(None)

        async def serve() -> None:
            try:
                await app(scope, receive, send)
            except BaseException as exc:  # the app died (a simulated crash is a BaseException)
                self._chunks.put_nowait(ConnectionLost(repr(exc)))
                self._started.set()
                if isinstance(exc, asyncio.CancelledError):
                    raise
            else:
                self._chunks.put_nowait(ConnectionLost("the app returned without ending its response"))
                self._started.set()

        self._task = asyncio.create_task(serve())

    async def started(self) -> int:
        """Wait for the status line; `ConnectionLost` if the app died first."""
        await self._started.wait()
        if self.status is None:
            raise ConnectionLost("no response")
        return self.status

    async def next_chunk(self, died: asyncio.Event | None = None) -> bytes | None:
        """The next body chunk, None at the end; `ConnectionLost` if the server died (or `died` is set)."""
        getter = asyncio.ensure_future(self._chunks.get())
        waits: list[asyncio.Future[Any]] = [getter]
        if died is not None:
            waits.append(asyncio.ensure_future(died.wait()))
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for waiter in waits[1:]:
            waiter.cancel()
        if not getter.done():
            getter.cancel()
            self.kill()
            raise ConnectionLost("the server died")
        item = getter.result()
        if isinstance(item, BaseException):
            raise item
        return item

    async def body(self, died: asyncio.Event | None = None) -> bytes:
        parts = []
        while (chunk := await self.next_chunk(died)) is not None:
            parts.append(chunk)
        return b"".join(parts)

    async def hang_up(self, timeout_s: float = 5.0) -> None:
        """The client closes the connection; the app sees `http.disconnect`."""
        self._hung_up.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
        except (TimeoutError, ConnectionLost):
            self.kill()
        except BaseException:
            pass

    def kill(self) -> None:
        """The server process is gone: its work on this request stops where it is."""
        self._task.cancel()

    async def closed(self) -> None:
        with contextlib.suppress(BaseException):
            await self._task


def open_request(
    app: ASGIApp, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> Connection:
    payload = b"" if body is None else json.dumps(body).encode()
    all_headers = {"content-type": "application/json", **(headers or {})} if body is not None else dict(headers or {})
    return Connection(app, method, path, payload, all_headers)


async def request(
    app: ASGIApp, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
    died: asyncio.Event | None = None,
) -> tuple[int, Any]:  # fmt: skip
    """A whole request: (status, JSON body or text)."""
    connection = open_request(app, method, path, body, headers)
    status = await connection.started()
    data = await connection.body(died)
    await connection.closed()
    try:
        return status, json.loads(data)
    except ValueError:
        return status, data.decode()
