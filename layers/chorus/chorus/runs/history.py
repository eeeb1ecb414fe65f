"""Loading the history a run continues: its newest part, as far back as a context can reach.

A group's history only grows, so a send must not read all of it. Pages are
read newest first and reading stops at the first of: the group's first
message; the message up to which the latest summary covers (older messages
are in the summary, see `chorus.engine.compaction`); or, while no summary has
been met, a window's worth of tokens (older messages could not be in any
agent's context anyway; compaction summarises what was read). So what a send
reads is bounded by its agents' context windows, not by the history's length;
and it reads the stored records as decoded JSON (`Store.history_page`), not
validated again. With a `TailCache`, a tail read before is extended by the
messages added since instead of read again: a short newest page (`PEEK`
messages, not a full first page: decoding rows is most of what a send to a long
history still reads) shows them, or the full first page when more were added.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate
from typing import Any

from chorus.engine.compaction import covered_until, message_tokens
from chorus.runs.tail_cache import Tail, TailCache, TailKey
from chorus.store.base import Store
from chorus.store.records import Page

FIRST_PAGE = 100
"""Messages of the first read: most sends need no other."""
PEEK = 32
"""Messages of the first read when a tail read before is kept: what a send or two added, and the
neighbours before them that show the kept tail is still the history's (`_extend`)."""
PAGE = 500
"""Messages of each later read."""

SUMMARY_REACH = 4
"""Windows of tokens a read goes on for to reach the message a summary ends at (by construction it is
within about one: a guard against a history written by another build)."""


@dataclass(slots=True)
class _Walk:
    """The stopping rule, applied to messages newest first: `take` says whether to stop after one."""

    window: int
    tokens: int = 0
    covered: str | None = None
    met_summary: bool = False

    def take(self, message: dict[str, Any], tokens: int) -> bool:
        self.tokens += tokens
        if not self.met_summary:
            self.covered = covered_until(message)
            self.met_summary = self.covered is not None
            return not self.met_summary and self.tokens > self.window
        return message.get("id") == self.covered or self.tokens > SUMMARY_REACH * self.window


async def load_tail(
    store: Store, tenant_id: str, key: dict[str, Any], window_tokens: int, cache: TailCache | None = None
) -> list[dict[str, Any]]:
    """The newest message records (as `MessageRecord` dicts) of the history named by `key` (`group_id`
    or `run_id`), oldest first."""
    ((field, value),) = key.items()
    cache_key: TailKey = (tenant_id, field, str(value), window_tokens)
    known = cache.get(cache_key) if cache is not None else None
    tail = None
    if known is not None:
        newest = await store.history_page(tenant_id, Page(limit=PEEK, order="desc"), **key)
        if len(newest) < PEEK:  # the whole history
            tail = await _read(store, tenant_id, key, window_tokens, newest, PEEK)
        else:
            tail = _extend(known, newest, window_tokens)
    if tail is None:
        first = await store.history_page(tenant_id, Page(limit=FIRST_PAGE, order="desc"), **key)
        if known is not None and len(first) == FIRST_PAGE:
            tail = _extend(known, first, window_tokens)
        if tail is None:
            tail = await _read(store, tenant_id, key, window_tokens, first, FIRST_PAGE)
    if cache is not None:
        cache.put(cache_key, tail)
    return list(tail.records)


async def _read(
    store: Store, tenant_id: str, key: dict[str, Any], window_tokens: int, batch: list[dict[str, Any]], limit: int
) -> Tail:
    """The tail read page by page, `batch` (the newest `limit`) first."""
    out: list[dict[str, Any]] = []
    sizes: list[int] = []
    walk = _Walk(window_tokens)
    while True:
        for record in batch:
            tokens = message_tokens(record["message"])
            out.append(record)
            sizes.append(tokens)
            if walk.take(record["message"], tokens):
                return _tail(out[::-1], sizes[::-1], complete=False)
        if len(batch) < limit:
            return _tail(out[::-1], sizes[::-1], complete=True)
        limit = PAGE
        page = Page(after=batch[-1]["id"], limit=limit, order="desc")  # `after` in newest-first order: older
        batch = await store.history_page(tenant_id, page, **key)


def _extend(known: Tail, first: list[dict[str, Any]], window_tokens: int) -> Tail | None:
    """`known` with the messages of `first` (newest first) added after it, walked again; None when
    `first` does not show `known`'s newest message with the same older neighbours, or the walk would
    need messages older than `known` holds."""
    newest = known.records[-1]["id"]
    at = next((i for i, record in enumerate(first) if record["id"] == newest), None)
    if at is None:
        return None
    overlap = first[at:]
    if [r["id"] for r in overlap] != [r["id"] for r in known.records[: -len(overlap) - 1 : -1]]:
        return None
    added = first[:at][::-1]
    records = known.records + added
    tokens = known.tokens + [message_tokens(r["message"]) for r in added]
    if any(covered_until(r["message"]) is not None for r in added):  # a new summary: walked afresh
        walk = _Walk(window_tokens)
        for i in range(len(records) - 1, -1, -1):
            if walk.take(records[i]["message"], tokens[i]):
                return _tail(records[i:], tokens[i:], complete=False)
        return _tail(records, tokens, complete=True) if known.complete else None
    sums = known.sums + list(accumulate(tokens[len(known.records) :], initial=known.sums[-1]))[1:]
    cut = _stop(sums, known.summary_at, known.covered_at, window_tokens)
    if cut is None:
        return (
            Tail(records, tokens, known.complete, sums, known.summary_at, known.covered_at) if known.complete else None
        )
    return Tail(
        records[cut:],
        tokens[cut:],
        False,
        sums[cut:],
        known.summary_at - cut if known.summary_at >= cut else -1,
        known.covered_at - cut if known.covered_at >= cut else -1,
    )


def _stop(sums: list[int], summary_at: int, covered_at: int, window_tokens: int) -> int | None:
    """Where `_Walk` stops, back from the newest of the records `sums` measures, when the newest
    summary is at `summary_at` and the message it ends at at `covered_at`; by search, not a walk:
    what the records from `i` on measure, `sums[-1] - sums[i]`, only grows as `i` goes back."""
    total = sums[-1]
    over = bisect_left(sums, total - window_tokens) - 1  # the newest from which a window is passed
    if over > summary_at:
        return over
    if summary_at < 0:
        return None
    far = bisect_left(sums, total - SUMMARY_REACH * window_tokens) - 1
    stops = [i for i in (covered_at, far) if 0 <= i < summary_at]
    return max(stops) if stops else None


def _tail(records: list[dict[str, Any]], tokens: list[int], complete: bool) -> Tail:
    """A tail as read, with what `_extend` searches it by."""
    summary_at = next((i for i in range(len(records) - 1, -1, -1) if covered_until(records[i]["message"])), -1)
    covered = covered_until(records[summary_at]["message"]) if summary_at >= 0 else None
    covered_at = next((i for i in range(summary_at - 1, -1, -1) if records[i]["message"].get("id") == covered), -1)
    sums = list(accumulate(tokens, initial=0))
    return Tail(records, tokens, complete, sums, summary_at, covered_at)
