"""`SharedSummaries`: the calls of a round needing one range get one summary, written once."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from chorus.runs.shared_summaries import SharedSummaries

KEY = (1, "", "message-a", "message-b")


async def test_concurrent_calls_of_one_range_write_once() -> None:
    summaries = SharedSummaries()
    writes: list[int] = []
    release = asyncio.Event()

    async def write() -> dict[str, Any]:
        writes.append(1)
        await release.wait()
        return {"id": "message-s", "message_type": "summary"}

    calls = [asyncio.create_task(summaries.once(KEY, write)) for _ in range(3)]
    await asyncio.sleep(0)
    release.set()
    results = await asyncio.gather(*calls)

    assert len(writes) == 1
    assert [wrote for _, wrote in results] == [True, False, False]
    assert {message["id"] for message, _ in results} == {"message-s"}


async def test_another_range_is_written_apart() -> None:
    summaries = SharedSummaries()
    writes: list[int] = []

    async def write() -> dict[str, Any]:
        writes.append(1)
        return {"id": f"message-{len(writes)}"}

    first = await summaries.once(KEY, write)
    other = await summaries.once((1, "", "message-a", "message-c"), write)
    next_round = await summaries.once((2, "", "message-a", "message-b"), write)

    assert [first, other, next_round] == [
        ({"id": "message-1"}, True),
        ({"id": "message-2"}, True),
        ({"id": "message-3"}, True),
    ]


async def test_a_waiting_call_writes_when_the_writer_fails() -> None:
    summaries = SharedSummaries()
    started = asyncio.Event()

    async def failing() -> dict[str, Any]:
        started.set()
        await asyncio.sleep(0)
        raise RuntimeError("the summariser failed")

    async def working() -> dict[str, Any]:
        return {"id": "message-s"}

    writer = asyncio.create_task(summaries.once(KEY, failing))
    await started.wait()
    waiter = asyncio.create_task(summaries.once(KEY, working))

    with pytest.raises(RuntimeError):
        await writer
    assert await waiter == ({"id": "message-s"}, True)
