"""Listings end early rather than grow without bound: at most `MAX_LISTING_CHARS` per response.

A page of `limit` items is bounded in count only, and an item may be large (a
memory block of a million characters, a tool's source, a long message; an agent
shows all its blocks), so a page of 1000 could be gigabytes. Each listing adds
items while their estimated size fits the budget, and always returns the first:
a shorter page is what any cursor-paginated API may return, and the client asks
for the next one `after` its last id.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import orjson

from chorus.limits import MAX_LISTING_CHARS
from chorus.store.records import Page

T = TypeVar("T")

ITEM_OVERHEAD = 1024
"""Characters counted for an item's fixed fields, beside the variable ones a size function counts."""


def within_budget(items: Iterable[T], size: Callable[[T], int], budget: int = MAX_LISTING_CHARS) -> list[T]:
    """The items, in order, while their sizes add up to at most `budget` (the first one always)."""
    out: list[T] = []
    total = 0
    for item in items:
        total += size(item)
        if out and total > budget:
            break
        out.append(item)
    return out


def json_size(value: Any) -> int:
    """The size of a JSON-ready value as it will be sent."""
    return len(orjson.dumps(value))


def page_through(items: Sequence[T], page: Page, ident: Callable[[T], str]) -> list[T]:
    """One page of a list held whole (an agent's attached tools or blocks), in `page`'s order.

    The SDK's pager asks again `after` the last id it got until a page comes
    back empty, so a route that ignored the cursor made `list()` loop forever.
    A cursor naming no listed item gives an empty page: the item was detached
    meanwhile, and ending the walk is safer than starting it over.
    """
    ordered = list(items) if page.order == "asc" else list(reversed(items))
    ids = [ident(item) for item in ordered]
    start, end = 0, len(ordered)
    if page.after is not None:
        if page.after not in ids:
            return []
        start = ids.index(page.after) + 1
    if page.before is not None:
        if page.before not in ids:
            return []
        end = ids.index(page.before)
    return ordered[start:end][: page.limit]
