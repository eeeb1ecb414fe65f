"""The `executor` port: who runs a run's driver.

`InProcessExecutor` runs drivers as asyncio tasks of this process (the
local default, and every `background=false` run). It keeps a strong
reference to each task (asyncio only keeps weak ones) and, at shutdown,
cancels what is left.

A `RemoteExecutor` runs a run elsewhere, from its record alone: the Step
Functions executor (`chorus.workflow.executor`) takes the background runs
of an AWS deployment, so they outlive the API's Lambda and its 15 minutes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any, Protocol

from chorus.store.records import RunRecord


class Executor(Protocol):
    def submit(self, run_id: str, work: Coroutine[Any, Any, None]) -> None: ...

    async def shutdown(self) -> None: ...


class RemoteExecutor(Protocol):
    async def start(self, run: RunRecord) -> None:
        """Start the run (idempotent: starting it again starts nothing)."""

    def first_owner(self) -> str | None:
        """A fresh lease owner a new run is created held by, for its first remote attempt to drive
        it without rewriting it (a run started directly); None: nobody holds it before its start."""

    async def cancel(self, run: RunRecord) -> Any:
        """Stop the run and end it `cancelled` (its cancel flag is set)."""

    async def reconcile(self, run: RunRecord) -> bool:
        """End a run whose remote execution died before finishing it; True if it did."""


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
