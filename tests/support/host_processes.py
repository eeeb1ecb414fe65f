"""Finding, on the host, what a tool started: by a unique word on the command lines it spawns."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import uuid
from collections.abc import Iterator
from pathlib import Path


def running(marker: str) -> list[int]:
    """Host pids whose command line holds `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and marker.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
    return found


async def all_gone(marker: str, within_s: float = 30.0) -> bool:
    """Whether every process with `marker` is gone within `within_s` (polled: the kernel reaps asynchronously)."""
    for _ in range(int(within_s / 0.05)):
        if not running(marker):
            return True
        await asyncio.sleep(0.05)
    return False


def kill_all(marker: str) -> None:
    for pid in running(marker):
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def process_marker() -> Iterator[str]:
    """A fresh marker; whatever still runs with it afterwards is killed, so a failing test leaves nothing behind."""
    word = f"chorus-escape-{uuid.uuid4().hex}"
    try:
        yield word
    finally:
        kill_all(word)
