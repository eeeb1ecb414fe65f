"""The history tails this process read last, so the next send to a group reads only what is new.

A send reads the newest part of its group's history, about one context window of
messages (`chorus.runs.history`): with a full window that is hundreds of rows to
read, decode and measure before the first byte, the same rows the previous send
read. A group's history only changes at its newest end: steps append messages
(summaries included) after the newest; a reset deletes all of them; a rolled-back
run's messages are the newest when they are removed. So a tail read before is
still the history's tail, up to its newest message, exactly when that message is
still in the store with the same older neighbours: the newest page, which every
send reads anyway, shows it (a message another run committed late, ordered
before that newest one, shows there as a neighbour the tail lacks). A tail that
does not pass is read again in full.

What is kept is bounded by the number of messages (`MAX_RECORDS`), least
recently used first out; one cache per store object. The records are shared
between the sends that read them: nothing may change them (nothing does: a run
adds its own messages as new dicts).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from weakref import WeakKeyDictionary

from chorus.store.base import Store

MAX_RECORDS = 20_000
"""Messages kept over all groups (about 1 KB each decoded): a few dozen full 32,000-token windows."""


@dataclass(frozen=True, slots=True)
class Tail:
    """A history's newest records as a read returned them, oldest first, with what each measured."""

    records: list[dict[str, Any]]
    tokens: list[int]
    complete: bool
    """Whether the records reach back to the history's first message."""
    sums: list[int]
    """`sums[i]`: what `records[:i]` measure, from some base (`len(records) + 1` of them), so what any
    newest part measures is a difference, and where a walk back from the newest passes a bound a search."""
    summary_at: int
    """Where the newest summary that names the last message it covers is (-1: none)."""
    covered_at: int
    """Where the newest message older than it with that id is (-1: none)."""


TailKey = tuple[str, str, str, int]
"""(tenant, `group_id` or `run_id`, its value, the window the read was bounded by)."""


class TailCache:
    def __init__(self, max_records: int = MAX_RECORDS) -> None:
        self.max_records = max_records
        self._tails: OrderedDict[TailKey, Tail] = OrderedDict()
        self._records = 0

    def get(self, key: TailKey) -> Tail | None:
        tail = self._tails.get(key)
        if tail is not None:
            self._tails.move_to_end(key)
        return tail

    def put(self, key: TailKey, tail: Tail) -> None:
        old = self._tails.pop(key, None)
        if old is not None:
            self._records -= len(old.records)
        if len(tail.records) > self.max_records:
            return
        self._tails[key] = tail
        self._records += len(tail.records)
        while self._records > self.max_records:
            _, dropped = self._tails.popitem(last=False)
            self._records -= len(dropped.records)


_caches: WeakKeyDictionary[Store, TailCache] = WeakKeyDictionary()


def tail_cache(store: Store) -> TailCache:
    """The cache of tails read from `store` in this process."""
    cache = _caches.get(store)
    if cache is None:
        cache = _caches[store] = TailCache()
    return cache
