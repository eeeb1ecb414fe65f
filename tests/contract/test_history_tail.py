"""What a send reads of a long history: a bounded tail, on every adapter (SQLite and DynamoDB on moto).

Counted, not timed: the rows the store returns and the reads it serves.
"""

from __future__ import annotations

from typing import Any

import pytest

from chorus.engine.compaction import SUMMARY, message_tokens
from chorus.runs.history import FIRST_PAGE, load_tail
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


def _record(i: int, message: dict[str, Any]) -> MessageRecord:
    mid = f"message-{i:06d}"
    return MessageRecord(
        tenant_id="t1",
        id=mid,
        created_at=stamp(0),
        group_id="g1",
        agent_id="agent-1",
        run_id="run-1",
        step_key=f"{i // 100 * 100:05d}",
        index=i % 100,
        position=f"{i:020d}:run-1:{i // 100 * 100:05d}:{i % 100:04d}",
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
    assert MessageRecord.model_validate(tail[0]) == (await store.list_messages("t1", Page(order="asc", limit=1)))[0]
