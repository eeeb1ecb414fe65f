"""Holding and stopping a run: the lease a worker holds it by, and cancelling its work promptly.

A run's work is raced against its cancel event (`until_cancelled`), so a step waiting on
a model, a tool's process or a fan-out worker stops the moment the event is set; writes
that must not be cut in half run to their end regardless (`uncancellable`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


class RunCancelled(Exception):
    """Raised inside the driver when the run's cancel flag is seen."""


class LeaseLost(Exception):
    """Another worker took the run over; this one must stop writing."""


@dataclass(frozen=True, slots=True)
class Lease:
    owner: str
    ttl_s: float = 30.0
    heartbeat_s: float = 1.0
    """How often the lease is renewed and the stored cancel flag read."""
    renew: bool = True
    """False: the heartbeat only watches the stored run (cancel flag, terminal status) and never
    writes it: one of many parallel Step Functions tasks, whose workflow, not a lease, owns the run."""


async def until_cancelled(work: Awaitable[T], cancel: asyncio.Event, stopped: Callable[[], None] | None = None) -> T:
    """Await `work` unless `cancel` is set first: then `work` is cancelled (a model call, a tool's
    process, fan-out workers all stop with its task) and `stopped` raises why (by default
    `RunCancelled`). Checking a flag between chunks is not enough: a step waiting on a slow model
    or a long tool sees no chunk."""
    task = asyncio.ensure_future(work)
    watch = asyncio.ensure_future(cancel.wait())
    try:
        await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watch.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    if task.cancelled():
        if stopped is not None:
            stopped()
        raise RunCancelled
    return task.result()


async def uncancellable(work: Awaitable[T]) -> T:
    """Await `work` to its end even if the caller is cancelled meanwhile (then re-raise the cancel)."""
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        with contextlib.suppress(Exception):
            await task
        raise
