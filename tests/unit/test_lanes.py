"""Ordered lanes: calls run at once, their output reaches the run in plan order, never interleaved."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from chorus.runs.lanes import DirectLane, OrderedLanes


@pytest.mark.parametrize("seed", range(25))
async def test_output_reads_lane_after_lane_whatever_the_timing(seed: int) -> None:
    rng = random.Random(seed)
    written: list[tuple[str, int, int]] = []

    def emit(event: Any) -> None:
        written.append(("event", *event))

    async def commit(step: Any) -> None:
        await asyncio.sleep(rng.random() / 1000)  # a store write takes a while: hand-overs race it
        written.append(("commit", *step))

    lanes = OrderedLanes(5, DirectLane(emit, commit))
    plan = {i: rng.randint(1, 6) for i in range(5)}

    async def worker(i: int) -> None:
        lane = lanes.lanes[i]
        for n in range(plan[i]):
            await asyncio.sleep(rng.random() / 500)
            lane.emit((i, n))  # type: ignore[arg-type]  # any event: the lanes only order them
            if n % 2:
                await lane.commit((i, n))
        await lanes.finished(i)

    await asyncio.gather(*(worker(i) for i in rng.sample(range(5), 5)))
    expected = [
        (kind, i, n) for i in range(5) for n in range(plan[i]) for kind in (["event", "commit"] if n % 2 else ["event"])
    ]
    assert written == expected


async def test_the_first_lane_writes_through_at_once() -> None:
    written: list[Any] = []

    async def commit(step: Any) -> None:
        written.append(step)

    lanes = OrderedLanes(2, DirectLane(written.append, commit))
    lanes.lanes[1].emit("second")  # type: ignore[arg-type]
    lanes.lanes[0].emit("first")  # type: ignore[arg-type]
    assert written == ["first"], "the head streams live; the next waits its turn"
    await lanes.finished(0)
    assert written == ["first", "second"]
    lanes.lanes[1].emit("live now")  # type: ignore[arg-type]
    assert written[-1] == "live now"
