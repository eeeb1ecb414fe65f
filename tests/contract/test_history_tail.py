"""What a send reads of a long history: a bounded tail, on every adapter (SQLite and DynamoDB on moto).

Counted, not timed: the rows the store returns and the reads it serves.
"""

from __future__ import annotations

from typing import Any

import pytest

from chorus.engine.compaction import SUMMARY, message_tokens
from chorus.runs.history import FIRST_PAGE, PEEK, load_tail
from chorus.runs.tail_cache import TailCache
from chorus.store.base import Store
from chorus.store.records import MessageRecord, Page
from support.contract_records import run, stamp, step


class Counting:
    """The store's `history_page`, counted: calls and rows returned."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls = 0
        self.rows = 0

    async def history_page(self, tenant_id: str, page: Page, **key: Any) -> list[dict[str, Any]]:
        self.calls += 1
        got = await self.store.history_page(tenant_id, page, **key)
        self.rows += len(got)
        return got


def _record(i: int, message: dict[str, Any], run_id: str = "run-1") -> MessageRecord:
    mid = f"message-{i:06d}"
    return MessageRecord(
        tenant_id="t1",
        id=mid,
        created_at=stamp(0),
        group_id="g1",
        agent_id="agent-1",
        run_id=run_id,
        step_key=f"{i // 100 * 100:05d}",
        index=i % 100,
        position=f"{i:020d}:{run_id}:{i // 100 * 100:05d}:{i % 100:04d}",
        message={"id": mid, **message},
    )


async def _history(store: Store, count: int, summary_at: int | None = None, covers: int = 0) -> None:
    r = run(group_id="g1", id="run-1")
    await store.put_run(r)
    records = []
    for i in range(count):
        if i == summary_at:
            body = {"message_type": SUMMARY, "summary": "s", "compaction": {"last_message_id": f"message-{covers:06d}"}}
        else:
            body = {"message_type": "assistant_message", "content": f"words of message {i} " * 3}
        records.append(_record(i, body))
    for start in range(0, count, 100):
        await store.commit_step(step(r, f"{start:05d}"), records[start : start + 100])


async def test_a_summary_bounds_what_a_send_reads(store: Store) -> None:
    await _history(store, 400, summary_at=380, covers=340)
    counting = Counting(store)
    tail = await load_tail(counting, "t1", {"group_id": "g1"}, window_tokens=1_000_000)  # type: ignore[arg-type]
    ids = [r["id"] for r in tail]
    assert ids[0] == "message-000340", "the read stops at the last message the summary covers"
    assert ids[-1] == "message-000399" and ids == sorted(ids), "oldest first, up to the newest"
    assert counting.calls == 1 and counting.rows <= FIRST_PAGE


async def test_without_a_summary_a_send_reads_about_one_window(store: Store) -> None:
    await _history(store, 400)
    counting = Counting(store)
    window = 1_000
    tail = await load_tail(counting, "t1", {"group_id": "g1"}, window_tokens=window)  # type: ignore[arg-type]
    read = sum(message_tokens(r["message"]) for r in tail)
    assert window < read <= window + max(message_tokens(r["message"]) for r in tail)
    assert tail[-1]["id"] == "message-000399"
    assert counting.calls == 1 and counting.rows <= FIRST_PAGE


async def test_a_short_history_is_read_whole_in_one_call(store: Store) -> None:
    await _history(store, 30)
    counting = Counting(store)
    tail = await load_tail(counting, "t1", {"group_id": "g1"}, window_tokens=32_000)  # type: ignore[arg-type]
    assert [r["id"] for r in tail] == [f"message-{i:06d}" for i in range(30)]
    assert counting.calls == 1


async def test_a_summary_far_back_is_reached_page_after_page(store: Store) -> None:
    await _history(store, 400, summary_at=390, covers=150)
    counting = Counting(store)
    tail = await load_tail(counting, "t1", {"group_id": "g1"}, window_tokens=1_000_000)  # type: ignore[arg-type]
    assert [r["id"] for r in tail] == [f"message-{i:06d}" for i in range(150, 400)], "every message, once, in order"
    assert counting.calls == 2


async def test_reading_history_validates_no_message_again(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    await _history(store, 150)
    validated = 0
    original = MessageRecord.model_validate_json

    def counting(raw: str | bytes, **kwargs: Any) -> MessageRecord:
        nonlocal validated
        validated += 1
        return original(raw, **kwargs)

    monkeypatch.setattr(MessageRecord, "model_validate_json", counting)
    tail = await load_tail(store, "t1", {"group_id": "g1"}, window_tokens=1_000_000)
    assert len(tail) == 150 and validated == 0, "validated when written, not again on every send"
    assert tail[0]["message"]["id"] == "message-000000"
    assert (
        MessageRecord.model_validate(tail[0])
        == (await store.list_messages("t1", Page(order="asc", limit=1), group_id="g1"))[0]
    )


async def _add(store: Store, first: int, count: int, run_id: str, summary: tuple[int, int] | None = None) -> None:
    """Messages `first`… appended by another run, a step per hundred (`summary`: (at, covers) makes one a summary)."""
    r = run(group_id="g1", id=run_id)
    await store.put_run(r)
    records = []
    for i in range(first, first + count):
        body: dict[str, Any] = {"message_type": "assistant_message", "content": f"words of message {i} " * 3}
        if summary is not None and i == summary[0]:
            body = {
                "message_type": SUMMARY,
                "summary": "s",
                "compaction": {"last_message_id": f"message-{summary[1]:06d}"},
            }
        records.append(_record(i, body, run_id))
    for key in sorted({record.step_key for record in records}):
        await store.commit_step(step(r, key), [record for record in records if record.step_key == key])


async def _both(store: Store, cache: TailCache, window: int) -> tuple[list[str], Counting]:
    """The tail's ids read through `cache` (its reads counted), checked against a read without one."""
    counting = Counting(store)
    cached = await load_tail(counting, "t1", {"group_id": "g1"}, window, cache)  # type: ignore[arg-type]
    fresh = await load_tail(store, "t1", {"group_id": "g1"}, window)
    assert cached == fresh, "a tail extended from the cache is the tail read afresh"
    return [r["id"] for r in cached], counting


async def test_the_next_send_reads_only_the_newest_page(store: Store) -> None:
    await _history(store, 1_200)
    cache = TailCache()
    _, first = await _both(store, cache, 1_000_000)
    assert first.calls == 4 and first.rows == 1_200
    await _add(store, 1_200, 6, "run-2")
    ids, second = await _both(store, cache, 1_000_000)
    assert ids[0] == "message-000000" and ids[-1] == "message-001205" and len(ids) == 1_206
    assert second.calls == 1 and second.rows == PEEK, "what is new is in a short newest page"


async def test_a_cached_tail_keeps_to_the_window(store: Store) -> None:
    await _history(store, 1_200)
    cache = TailCache()
    window = 6_000
    await _both(store, cache, window)
    for n in range(5):
        await _add(store, 1_200 + 10 * n, 10, f"run-{n + 2}")
        ids, counting = await _both(store, cache, window)
        assert ids[-1] == f"message-{1_209 + 10 * n:06d}" and counting.calls == 1


async def test_a_new_summary_bounds_a_cached_tail(store: Store) -> None:
    await _history(store, 1_200)
    cache = TailCache()
    await _both(store, cache, 1_000_000)
    await _add(store, 1_200, 6, "run-2", summary=(1_203, 1_150))
    ids, counting = await _both(store, cache, 1_000_000)
    assert ids[0] == "message-001150" and counting.calls == 1
    await _add(store, 1_206, 6, "run-3")
    ids, counting = await _both(store, cache, 1_000_000)
    assert ids[0] == "message-001150" and ids[-1] == "message-001211" and counting.calls == 1


@pytest.mark.parametrize("added", [5, FIRST_PAGE + 20])
async def test_a_reset_history_is_read_again(store: Store, added: int) -> None:
    await _history(store, 1_200)
    cache = TailCache()
    await _both(store, cache, 1_000_000)
    await store.delete_group_messages("t1", "g1")
    await _add(store, 5_000, added, "run-2")
    ids, _ = await _both(store, cache, 1_000_000)
    assert ids == [f"message-{i:06d}" for i in range(5_000, 5_000 + added)], "nothing of the cached tail is left"


@pytest.mark.parametrize("added", [PEEK + 5, FIRST_PAGE + 1])
async def test_more_new_messages_than_a_page_are_read_from_a_longer_one(store: Store, added: int) -> None:
    await _history(store, 1_200)
    cache = TailCache()
    await _both(store, cache, 1_000_000)
    await _add(store, 1_200, added, "run-2")
    ids, counting = await _both(store, cache, 1_000_000)
    assert len(ids) == 1_200 + added and ids[-1] == f"message-{1_199 + added:06d}"
    if added < FIRST_PAGE:
        assert counting.calls == 2 and counting.rows == PEEK + FIRST_PAGE, "the first page shows them"
    else:
        assert counting.calls > 2, "read in full"


def test_the_cache_is_bounded_by_messages_least_recently_used_out() -> None:
    from chorus.runs.tail_cache import Tail

    cache = TailCache(max_records=10)
    tail = Tail(
        [{"id": str(i)} for i in range(4)], [1] * 4, complete=True, sums=[0, 1, 2, 3, 4], summary_at=-1, covered_at=-1
    )
    for group in ("a", "b", "c"):
        cache.put(("t1", "group_id", group, 100), tail)
    assert cache.get(("t1", "group_id", "a", 100)) is None, "12 records > 10: the oldest went"
    assert cache.get(("t1", "group_id", "c", 100)) is tail
    assert cache.get(("t2", "group_id", "c", 100)) is None, "another tenant's key is another tail"
