"""Any ASGI app served by real uvicorn on a free loopback port, in a thread of the test process.

For a Chorus app on a store the test holds (DynamoDB on moto, whose mock is process-wide, so the
server's thread sees it) and for the MCP test server: real sockets and HTTP, as a client meets them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn


@contextmanager
def serve_in_thread(app: Any, startup_timeout_s: float = 30) -> Iterator[tuple[str, uvicorn.Server]]:
    """`(http://127.0.0.1:<port>, server)` until the block ends; setting `server.should_exit` stops it early."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + startup_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the threaded server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        sock.close()
