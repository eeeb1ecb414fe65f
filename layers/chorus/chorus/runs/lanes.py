"""A parallel round's output in plan order: every call runs at once, none interleaves.

A supervisor fan-out gives each call a lane of `OrderedLanes`, a `StepSink` in front of the
run's own sink: only the first unfinished call writes through; the others buffer, in order,
until every call before them has finished, then flush and write through. So the stream and
the history read call after call in plan order (the order of `agent_ids`), never
interleaved, and the first worker still streams live. Nothing buffered is written if the
round is abandoned (cancel, crash): those turns simply run again.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from chorus.engine.events import Event
from chorus.runs.steps import StepCommit, StepSink


@dataclass(slots=True)
class _OrderedLane:
    sink: StepSink
    live: bool = False
    finished: bool = False
    ops: list[Event | StepCommit] = field(default_factory=list)
    """Buffered output, in order: events to emit, step commits to commit."""

    def emit(self, event: Event) -> None:
        if self.live:
            self.sink.emit(event)
        else:
            self.ops.append(event)

    async def commit(self, step: StepCommit) -> None:
        if self.live:
            await self.sink.commit(step)
        else:
            self.ops.append(step)

    async def go_live(self) -> None:
        """Write what was buffered, in order, then write through. Output that arrives while a
        buffered commit is awaited joins the buffer's end, so order holds."""
        while self.ops:
            item = self.ops.pop(0)
            if isinstance(item, StepCommit):
                await self.sink.commit(item)
            else:
                self.sink.emit(item)
        self.live = True


class OrderedLanes:
    def __init__(self, count: int, sink: StepSink) -> None:
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
