"""A real Chorus server in a subprocess on a free loopback port, with its own SQLite file.

Used by `chorus demo` (when no `--url` is given), the end-to-end tests and
the benchmarks: the faithful local stand-in for the Lambda Web Adapter hop is
real uvicorn read over a socket, never an in-process transport.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True, slots=True)
class Server:
    url: str
    db_path: Path
    pid: int = 0
    """The server process (its memory is read by `benchmarks/load.py`)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def running_server(
    env: dict[str, str] | None = None,
    startup_timeout_s: float = 30,
    *,
    db_path: Path | None = None,
    quiet: bool = False,
) -> Iterator[Server]:
    """Start `uvicorn chorus.api:app`, wait until `/v1/health` answers, stop it on exit.

    The database is a fresh temporary file unless `db_path` names one (the demo's: the file
    `make run` serves, so what it creates is still there afterwards). `quiet` drops the server's
    standard output (a benchmark whose own output is its JSON)."""
    with tempfile.TemporaryDirectory(prefix="chorus-") as tmp:
        db = db_path or Path(tmp) / "chorus.db"
        port = free_port()
        command = [
            sys.executable, "-m", "uvicorn", "chorus.api:app", "--host", "127.0.0.1", "--port", str(port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            env={**os.environ, "CHORUS_DB_PATH": str(db), **(env or {})},
            stdout=subprocess.DEVNULL if quiet else None,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + startup_timeout_s
            while True:
                try:
                    if httpx.get(f"{url}/v1/health", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"the Chorus server on port {port} did not start")
                time.sleep(0.05)
            yield Server(url, db, process.pid)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
