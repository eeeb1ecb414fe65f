"""How long an invocation measured here would last on Lambda, and so what its duration costs.

Here a handler runs on a whole core of this machine, with DynamoDB served by
moto in the same process. On Lambda it gets `memory / 1769` of one vCPU
(https://docs.aws.amazon.com/lambda/latest/dg/configuration-memory.html) and
DynamoDB answers over the network. So an invocation's measured wall time is
split into:

- the model wait (the scripted model's pace): the same on Lambda;
- moto's time serving its requests (each timed where moto serves it): on
  AWS, a network round trip each, `DYNAMODB_REQUEST_S`, but for a request
  served while the function waited on the model (a heartbeat's read, a log
  record written as tokens stream), which costs it no time there either;
- the handler's own CPU time (its event loop thread's, and its store calls'
  on the store's threads less moto's share of them): stretched by the CPU
  share, `1769 / memory` below 1,769 MB.

Each part is rounded the way that costs more: the event loop's CPU time
counts whatever else that loop ran (for the API, the in-process client
reading the stream), requests are not overlapped with one another nor with
anything but a model wait they fall wholly within, and `DYNAMODB_REQUEST_S` is above what DynamoDB answers in-region.
The figure is an upper bound of what the invocation bills, at any memory size.
"""

from __future__ import annotations

import bisect
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from dynamodb_units import Meter, Served

VCPU_MB = 1769
"""Memory at which a Lambda function has one vCPU; below it, CPU is that share of one."""
DYNAMODB_REQUEST_S = 0.010
"""One DynamoDB request from Lambda in the same region, rounded up from its single-digit milliseconds."""


@dataclass(frozen=True, slots=True)
class Window:
    """One invocation: its function, and when it ran (`time.perf_counter`)."""

    task: str
    start: float
    end: float


@dataclass(slots=True)
class FunctionTime:
    """One function's invocations of a run, summed."""

    wall_s: float = 0.0
    model_wait_s: float = 0.0
    moto_s: float = 0.0
    requests: float = 0.0
    cpu_s: float = 0.0
    """The handler's own CPU time, on this machine's whole core."""

    def on_lambda(self, memory_mb: int) -> float:
        """Seconds Lambda bills: the wall time without moto (never less than the wait and the CPU it
        holds), a network round trip per request, and the CPU time stretched by the CPU share."""
        base = max(self.wall_s - self.moto_s, self.model_wait_s + self.cpu_s)
        stretch = max(1.0, VCPU_MB / memory_mb) - 1
        return base + self.requests * DYNAMODB_REQUEST_S + self.cpu_s * stretch


def overlap(a_start: float, a_end: float, b_start: float, b_end: float) -> float:
    return max(0.0, min(a_end, b_end) - max(a_start, b_start))


@dataclass(frozen=True, slots=True)
class Pace:
    """One wait of a function on the model (a token's pace)."""

    task: str
    start: float
    end: float


def within_a_wait(paces: list[Pace], starts: list[float], task: str, start: float, end: float) -> bool:
    """Whether [start, end] lies inside one of `task`'s model waits (`paces` sorted by start, `starts` theirs)."""
    i = bisect.bisect_right(starts, start) - 1
    while i >= 0 and paces[i].start > start - 60:  # a wait is a token's pace: seconds at most
        p = paces[i]
        if p.task == task and p.end >= end:
            return True
        i -= 1
    return False


def split(
    windows: list[Window],
    served: list[Served],
    waits: dict[str, float],
    cpu: dict[str, float],
    paces: list[Pace] | None = None,
) -> dict[str, FunctionTime]:
    """Each function's time by part, from its invocations, the requests moto served meanwhile (one
    served while several invocations ran is shared among them; one served while the function waited
    on the model is no part of its time), and its model wait and CPU time."""
    ordered = sorted(paces or [], key=lambda p: p.start)
    starts = [p.start for p in ordered]
    times: dict[str, FunctionTime] = {}
    for w in windows:
        t = times.setdefault(w.task, FunctionTime())
        t.wall_s += w.end - w.start
        for r in served:
            share = overlap(w.start, w.end, r.start, r.end)
            if share <= 0 or within_a_wait(ordered, starts, w.task, r.start, r.end):
                continue
            running = sum(1 for o in windows if overlap(o.start, o.end, r.start, r.end) > 0)
            t.moto_s += share / running
            t.requests += share / max(r.end - r.start, 1e-9) / running
    for task, t in times.items():
        t.model_wait_s = waits.get(task, 0.0)
        t.cpu_s = cpu.get(task, 0.0)
    return times


class FunctionClock:
    """Measures, by function, the model wait and the CPU time of the store calls made in process.

    A function is the task the calling thread runs (`here()`, the harness's), or `api` outside
    any task: the API's in-process requests. Its model wait is the scripted model's pace; a
    store call's CPU time is its thread's over the call, less what moto took serving it there."""

    def __init__(self, here: Callable[[], tuple[str, int, dict[str, Any]] | None], meter: Meter) -> None:
        self.here, self.meter = here, meter
        self.waits: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self.paces: list[Pace] = []
        self._lock = threading.Lock()

    def function(self) -> str:
        running = self.here()
        return running[0] if running is not None else "api"

    def add_wait(self, task: str, seconds: float) -> None:
        with self._lock:
            self.waits[task] = self.waits.get(task, 0.0) + seconds

    def add_cpu(self, task: str, seconds: float) -> None:
        with self._lock:
            self.cpu[task] = self.cpu.get(task, 0.0) + seconds

    def add_pace(self, pace: Pace) -> None:
        with self._lock:
            self.paces.append(pace)

    def snapshot(self) -> tuple[dict[str, float], dict[str, float]]:
        with self._lock:
            return dict(self.waits), dict(self.cpu)

    def since(self, before: tuple[dict[str, float], dict[str, float]]) -> tuple[dict[str, float], dict[str, float]]:
        """(model wait, CPU time) by function since `before` (a `snapshot`)."""
        (waits, cpu), (waits_then, cpu_then) = self.snapshot(), before
        return _less(waits, waits_then), _less(cpu, cpu_then)

    @contextlib.contextmanager
    def running(self) -> Iterator[FunctionClock]:
        from chorus.llm.scripted import ScriptedModel
        from chorus.store.dynamodb_core import DynamoDBCore

        pace, call = ScriptedModel._pace, DynamoDBCore._call
        clock, local = self, self.meter.local

        async def paced(model: ScriptedModel) -> None:
            task, start = clock.function(), time.perf_counter()
            clock.add_wait(task, model.script.delay_s)
            await pace(model)
            clock.add_pace(Pace(task, start, time.perf_counter()))

        async def timed(store: DynamoDBCore, fn: Callable[..., Any], *args: Any) -> Any:
            task = clock.function()  # on the caller's thread: the store's threads run no task

            def run(*arguments: Any) -> Any:
                cpu, moto = time.thread_time(), getattr(local, "moto_cpu_s", 0.0)
                try:
                    return fn(*arguments)
                finally:
                    served = getattr(local, "moto_cpu_s", 0.0) - moto
                    clock.add_cpu(task, time.thread_time() - cpu - served)

            return await call(store, run, *args)

        with mock.patch.object(ScriptedModel, "_pace", paced), mock.patch.object(DynamoDBCore, "_call", timed):
            yield self


def _less(now: dict[str, float], then: dict[str, float]) -> dict[str, float]:
    return {task: value - then.get(task, 0.0) for task, value in now.items()}
