"""One summary per covered range among the parallel calls of a round, in this process.

A supervisor's fan-out (any parallel round) gives every call the same snapshot
of the history. When that snapshot no longer fits the workers' windows, each
would summarise the same oldest messages: one summariser call and one summary
message apiece, all of the same range, all committed. Instead the first call
to need a range writes its summary (committed with its step, like any summary)
and the others of the round wait for it and put the very same message in their
own context: not committed again, not paid for again, not announced again.

A range is the round, the summary it folds in and the first and last message it
newly covers: calls whose windows differ cut elsewhere and write their own. When
the writer fails (its summariser call, or its turn is cancelled), a waiting call
writes the summary itself. A waiting call that commits its step relies on the
writer's step for the summary: if that step fails afterwards, the summary is not
stored and the next step that needs it summarises again, as after any failed step.

Calls of a round run by separate processes (a Step Functions Map runs each call
in its own Lambda) do not share: each writes its own summary, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

RangeKey = tuple[int, str, str, str]
"""The round, the id of the summary folded in ("" for none), the first and the last message newly covered."""


class _WriterFailed(Exception):
    """The call writing a range's summary failed: a waiting call writes it itself."""


class SharedSummaries:
    """The summaries the calls of one run's rounds are writing or have written, by range."""

    def __init__(self) -> None:
        self._ranges: dict[RangeKey, asyncio.Future[dict[str, Any]]] = {}

    async def once(self, key: RangeKey, write: Callable[[], Awaitable[dict[str, Any]]]) -> tuple[dict[str, Any], bool]:
        """The summary message of `key` and whether this caller wrote it (with `write`), or waited
        for the call that did."""
        while (pending := self._ranges.get(key)) is not None:
            try:
                return await asyncio.shield(pending), False
            except _WriterFailed:
                continue
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._ranges[key] = future
        try:
            message = await write()
        except BaseException:
            del self._ranges[key]
            future.set_exception(_WriterFailed())
            future.exception()  # retrieved: no one need be waiting
            raise
        future.set_result(message)
        return message, True


@dataclass(frozen=True, slots=True)
class Sharing:
    """What a call of a parallel round shares its summaries through: the run's ranges, its round, and
    how a summary another call wrote enters this call's history."""

    summaries: SharedSummaries
    round: int
    adopt: Callable[[dict[str, Any]], None]

    def key(self, previous: dict[str, Any] | None, covered: Sequence[dict[str, Any]]) -> RangeKey:
        folded = str(previous.get("id") or "") if previous is not None else ""
        return (self.round, folded, str(covered[0].get("id")), str(covered[-1].get("id")))
