"""A kept history tail extended by search is the tail a walk over the same history gives.

`_extend` finds where the walk back from the newest message stops (a window's
worth of tokens, or the message the newest summary ends at) by searching the
tail's running sums instead of walking it again; the reference is `_read`, the
walk itself, over the same history served a page at a time from a list.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chorus.engine import compaction
from chorus.engine.compaction import SUMMARY
from chorus.runs import history
from chorus.runs.history import FIRST_PAGE, _extend, _read
from chorus.runs.tail_cache import Tail
from chorus.store.records import Page


class Pages:
    """`history_page` over a list of records, newest first, as a store serves it."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    async def history_page(self, tenant_id: str, page: Page, **key: Any) -> list[dict[str, Any]]:
        newest = self.records[::-1]
        start = next(i + 1 for i, r in enumerate(newest) if r["id"] == page.after) if page.after else 0
        return newest[start : start + page.limit]


def record(i: int, words: int, covers: int | None) -> dict[str, Any]:
    message: dict[str, Any] = {"id": f"m{i:05d}", "message_type": "assistant_message", "content": "word " * words}
    if covers is not None:
        message = {"id": f"m{i:05d}", "message_type": SUMMARY, "summary": "so far", "compaction": {}}
        message["compaction"]["last_message_id"] = f"m{covers:05d}"
    return {"id": message["id"], "message": message}


async def fresh(records: list[dict[str, Any]], window: int) -> Tail:
    pages = Pages(records)
    first = await pages.history_page("t", Page(limit=FIRST_PAGE))
    return await _read(pages, "t", {"group_id": "g"}, window, first, FIRST_PAGE)  # type: ignore[arg-type]


@settings(max_examples=120, deadline=None)
@given(st.data())
async def test_an_extended_tail_is_the_tail_walked_afresh(data: st.DataObject) -> None:
    window = data.draw(st.integers(40, 400), label="window")
    records: list[dict[str, Any]] = []

    def add(count: int) -> None:
        for _ in range(count):
            i = len(records)
            summary = i > 2 and data.draw(st.integers(0, 9)) == 0
            covers = data.draw(st.integers(0, i - 1)) if summary else None
            records.append(record(i, data.draw(st.integers(1, 30)), covers))

    add(data.draw(st.integers(1, 150)))
    known = await fresh(records, window)
    for _ in range(data.draw(st.integers(1, 6))):
        add(data.draw(st.integers(1, 12)))
        newest = await Pages(records).history_page("t", Page(limit=history.PEEK))
        extended = _extend(known, newest, window)
        expected = await fresh(records, window)
        if extended is None:
            shorter = len(known.records) < history.PEEK  # too short to show the page's older neighbours
            assert shorter or expected.records[0]["id"] < known.records[0]["id"], "given up only for older messages"
        else:
            assert [r["id"] for r in extended.records] == [r["id"] for r in expected.records]
            assert extended.tokens == expected.tokens and extended.complete == expected.complete
            assert (extended.summary_at, extended.covered_at) == (expected.summary_at, expected.covered_at)
            assert [b - a for a, b in pairwise(extended.sums)] == expected.tokens
        known = extended if extended is not None else expected


async def test_extending_a_tail_looks_only_at_what_is_new(monkeypatch: pytest.MonkeyPatch) -> None:
    records = [record(i, 10, None) for i in range(1_000)] + [record(1_000, 0, 100)]
    records += [record(i, 10, None) for i in range(1_001, 1_200)]
    known = await fresh(records, 32_000)
    assert known.records[0]["id"] == "m00100" and not known.complete
    looked: list[str] = []

    def covered_until(message: dict[str, Any]) -> str | None:
        looked.append(message["id"])
        return compaction.covered_until(message)

    def message_tokens(message: dict[str, Any]) -> int:
        looked.append(message["id"])
        return compaction.message_tokens(message)

    monkeypatch.setattr(history, "covered_until", covered_until)
    monkeypatch.setattr(history, "message_tokens", message_tokens)
    records += [record(i, 10, None) for i in range(1_200, 1_204)]
    extended = _extend(known, await Pages(records).history_page("t", Page(limit=history.PEEK)), 32_000)
    assert extended is not None and len(extended.records) == len(known.records) + 4
    assert sorted(set(looked)) == [f"m{i:05d}" for i in range(1_200, 1_204)], "the four new messages, not the 1,100"
