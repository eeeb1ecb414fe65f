"""The `executor` port: who runs a run's driver.

`InProcessExecutor` runs drivers as asyncio tasks of this process (the
local default, and every `background=false` run). It keeps a strong
reference to each task (asyncio only keeps weak ones) and, at shutdown,
cancels what is left. The Step Functions executor (issue 8) implements the
same `submit`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol


class Executor(Protocol):
    def submit(self, run_id: str, work: Coroutine[Any, Any, None]) -> None: ...

    async def shutdown(self) -> None: ...


class InProcessExecutor:
    def __init__(self) -> None:
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def submit(self, run_id: str, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work, name=f"run-{run_id}")
        self._tasks[run_id] = task
        task.add_done_callback(lambda _t: self._tasks.pop(run_id, None))

    async def wait(self, run_id: str) -> None:
        """Wait for a run submitted here to finish (no-op if it is not running here)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait until every run submitted here has finished (a buffered Lambda invocation before it returns)."""
        while self._tasks:
            await asyncio.gather(*(asyncio.shield(t) for t in list(self._tasks.values())), return_exceptions=True)

    async def shutdown(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
