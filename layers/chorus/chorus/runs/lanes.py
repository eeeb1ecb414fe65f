"""Where a turn's output goes: straight to the run, or in plan order out of a parallel round.

A turn writes two things: events (to the run log) and step commits (to
history). `Lane` is that pair. A single call writes through a `DirectLane`.
A parallel round (supervisor fan-out) gives each call a lane of
`OrderedLanes`: every call runs at once, but only the first unfinished call
writes through; the others buffer, in order, until every call before them
has finished, then flush and write through. So the stream and the history
read call after call in plan order (the order of `agent_ids`), never
interleaved, and the first worker still streams live. Nothing buffered is
written if the round is abandoned (cancel, crash): those turns simply run
again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from chorus.engine.events import Event


class Lane(Protocol):
    def emit(self, event: Event) -> None: ...

    async def commit(self, step: Any) -> None: ...


@dataclass(slots=True)
class DirectLane:
    emit_event: Callable[[Event], None]
    commit_step: Callable[[Any], Awaitable[None]]

    def emit(self, event: Event) -> None:
        self.emit_event(event)

    async def commit(self, step: Any) -> None:
        await self.commit_step(step)


@dataclass(slots=True)
class _OrderedLane:
    sink: DirectLane
    live: bool = False
    finished: bool = False
    ops: list[tuple[bool, Any]] = field(default_factory=list)
    """Buffered output: `(True, event)` to emit, `(False, step)` to commit."""

    def emit(self, event: Event) -> None:
        if self.live:
            self.sink.emit(event)
        else:
            self.ops.append((True, event))

    async def commit(self, step: Any) -> None:
        if self.live:
            await self.sink.commit(step)
        else:
            self.ops.append((False, step))

    async def go_live(self) -> None:
        """Write what was buffered, in order, then write through. Output that arrives while a
        buffered commit is awaited joins the buffer's end, so order holds."""
        while self.ops:
            is_event, item = self.ops.pop(0)
            if is_event:
                self.sink.emit(item)
            else:
                await self.sink.commit(item)
        self.live = True


class OrderedLanes:
    def __init__(self, count: int, sink: DirectLane) -> None:
        self.lanes = [_OrderedLane(sink) for _ in range(count)]
        self._head = 0
        self._handover = asyncio.Lock()
        """One hand-over at a time: a lane finishing while an earlier one flushes waits its turn."""
        if self.lanes:
            self.lanes[0].live = True

    async def finished(self, index: int) -> None:
        """Call `index` is done: if it was the head, hand the stream on to the next calls in order."""
        self.lanes[index].finished = True
        async with self._handover:
            while self._head < len(self.lanes) and self.lanes[self._head].finished:
                self._head += 1
                if self._head < len(self.lanes):
                    await self.lanes[self._head].go_live()
