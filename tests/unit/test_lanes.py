"""Ordered lanes: calls run at once, their output reaches the run in plan order, never interleaved."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from chorus.llm.base import Usage
from chorus.runs.lanes import OrderedLanes
from chorus.runs.steps import Slot, StepCommit


def step(call: int, n: int) -> StepCommit:
    return StepCommit(f"{call}.{n}", "agent", Slot(1, call, 5), n, [], Usage(), False, "end_turn", "", "speak")


class Sink:
    """A run's sink that records what reaches it; its commits take a while, so hand-overs race them."""

    def __init__(self, rng: random.Random | None = None) -> None:
        self.rng = rng
        self.written: list[Any] = []

    def emit(self, event: dict[str, Any]) -> None:
        self.written.append(("event", event["call"], event["n"]) if "call" in event else event["text"])

    async def commit(self, commit: StepCommit) -> None:
        if self.rng is not None:
            await asyncio.sleep(self.rng.random() / 1000)
        call, n = commit.key.split(".")
        self.written.append(("commit", int(call), int(n)))


@pytest.mark.parametrize("seed", range(25))
async def test_output_reads_lane_after_lane_whatever_the_timing(seed: int) -> None:
    rng = random.Random(seed)
    sink = Sink(rng)
    lanes = OrderedLanes(5, sink)
    plan = {i: rng.randint(1, 6) for i in range(5)}

    async def worker(i: int) -> None:
        lane = lanes.lanes[i]
        for n in range(plan[i]):
            await asyncio.sleep(rng.random() / 500)
            lane.emit({"call": i, "n": n})
            if n % 2:
                await lane.commit(step(i, n))
        await lanes.finished(i)

    await asyncio.gather(*(worker(i) for i in rng.sample(range(5), 5)))
    expected = [
        (kind, i, n) for i in range(5) for n in range(plan[i]) for kind in (["event", "commit"] if n % 2 else ["event"])
    ]
    assert sink.written == expected


async def test_the_first_lane_writes_through_at_once() -> None:
    sink = Sink()
    lanes = OrderedLanes(2, sink)
    lanes.lanes[1].emit({"text": "second"})
    lanes.lanes[0].emit({"text": "first"})
    assert sink.written == ["first"], "the head streams live; the next waits its turn"
    await lanes.finished(0)
    assert sink.written == ["first", "second"]
    lanes.lanes[1].emit({"text": "live now"})
    assert sink.written[-1] == "live now"
