"""A run's messages, listed and deleted by run, when the runs of one group interleave.

DynamoDB reads a run's messages from its group's history (from a little before the run was
created on, keeping the rows whose position names the run), so these pin down what that must
never do: show another run's messages, drop one stamped by a clock a little behind the one that
created the run, or page differently from the group's order and cursors.
"""

from __future__ import annotations

import pytest

from chorus.errors import NotFound
from chorus.store.base import Store
from chorus.store.records import MessageRecord, Page, RunRecord
from support.contract_records import EPOCH_NS, message, run, stamp, step

SECOND_NS = 1_000_000_000
SECOND_US = 1_000_000


async def _committed(store: Store, r: RunRecord, key: str, at_s: float) -> MessageRecord:
    m = message(r, key, 0, position=int(at_s * SECOND_NS))
    await store.commit_step(step(r, key), [m])
    return m


async def _two_interleaved_runs(store: Store) -> tuple[RunRecord, RunRecord, list[MessageRecord]]:
    """Run `first` (created at 0 s) and `queued` (created at 2 s while `first` ran) on group `g1`,
    committing in turns; `queued`'s first message is stamped 0.5 s before its run was created
    (the committing worker's clock behind the API's). Another group's run commits meanwhile."""
    first = run(group_id="g1", created=0)
    queued = run(group_id="g1", created=2 * SECOND_US)
    elsewhere = run(group_id="g2", created=SECOND_US)
    for r in (first, queued, elsewhere):
        await store.put_run(r)
    history = [
        await _committed(store, first, "0000", 0.1),
        await _committed(store, first, "0001", 1.0),
        await _committed(store, queued, "0000", 1.5),
        await _committed(store, first, "0002", 2.5),
        await _committed(store, queued, "0001", 3.0),
        await _committed(store, first, "0003", 4.0),
        await _committed(store, queued, "0002", 5.0),
    ]
    await _committed(store, elsewhere, "0000", 2.0)
    return first, queued, history


def _expected(history: list[MessageRecord], run_id: str, page: Page) -> list[str]:
    """The run's messages of `page` over the group's history (oldest first), cursors any of its messages."""
    ids = [m.id for m in history]
    ordered = ids if page.order == "asc" else ids[::-1]
    at = {i: n for n, i in enumerate(ordered)}
    if page.after is not None:
        ordered = ordered[at[page.after] + 1 :]
    if page.before is not None:
        ordered = [i for i in ordered if at[i] < at[page.before]]
    mine = {m.id for m in history if m.run_id == run_id}
    return [i for i in ordered if i in mine][: page.limit]


async def test_a_runs_listing_holds_its_own_messages_only_in_commit_order(store: Store) -> None:
    first, queued, history = await _two_interleaved_runs(store)
    for r in (first, queued):
        own = [m for m in history if m.run_id == r.id]
        assert await store.list_messages("t1", Page(order="asc"), run_id=r.id) == own
        assert await store.list_messages("t1", Page(order="desc"), run_id=r.id) == own[::-1]
        rows = await store.history_page("t1", Page(order="desc"), run_id=r.id)
        assert [x["id"] for x in rows] == [m.id for m in own[::-1]]
    assert queued.id in {m.run_id for m in await store.list_messages("t1", Page(), group_id="g1")}


async def test_a_message_stamped_just_before_its_run_was_created_is_listed(store: Store) -> None:
    _, queued, history = await _two_interleaved_runs(store)
    early = next(m for m in history if m.run_id == queued.id)
    assert early.position < f"{EPOCH_NS + 2 * SECOND_NS:020d}", "stamped before the run's created_at"
    assert (await store.list_messages("t1", Page(order="asc", limit=1), run_id=queued.id)) == [early]
    assert (await store.list_messages("t1", Page(order="desc"), run_id=queued.id))[-1] == early


async def test_paging_a_runs_messages_by_cursor_in_both_orders(store: Store) -> None:
    first, queued, history = await _two_interleaved_runs(store)
    for r in (first, queued):
        own = [m.id for m in history if m.run_id == r.id]
        for order in ("asc", "desc"):
            for limit in (1, 2, 3, 5):
                seen: list[str] = []
                cursor = None
                while page := await store.list_messages(
                    "t1", Page(after=cursor, limit=limit, order=order), run_id=r.id
                ):
                    assert len(page) <= limit
                    seen += [m.id for m in page]
                    cursor = page[-1].id
                assert seen == (own if order == "asc" else own[::-1]), (r.id, order, limit)
            for after in [None, *(m.id for m in history)]:
                for before in [None, *(m.id for m in history)]:
                    window = Page(after=after, before=before, limit=2, order=order)
                    got = [m.id for m in await store.list_messages("t1", window, run_id=r.id)]
                    assert got == _expected(history, r.id, window), (r.id, order, after, before)
    with pytest.raises(NotFound):
        await store.list_messages("t1", Page(after="message-missing"), run_id=first.id)


async def test_deleting_a_runs_messages_leaves_the_interleaved_run_whole(store: Store) -> None:
    first, queued, history = await _two_interleaved_runs(store)
    assert await store.delete_run_messages("t1", first.id) == 4
    assert await store.list_messages("t1", Page(), run_id=first.id) == []
    left = [m for m in history if m.run_id == queued.id]
    assert await store.list_messages("t1", Page(order="asc"), run_id=queued.id) == left
    assert await store.list_messages("t1", Page(order="asc"), group_id="g1") == left
    assert len(await store.list_messages("t1", Page(), group_id="g2")) == 1
    assert await store.delete_run_messages("t1", first.id) == 0


async def test_another_tenants_run_of_the_same_ids_lists_nothing_of_this_one(store: Store) -> None:
    first, _, _ = await _two_interleaved_runs(store)
    await store.put_run(first.model_copy(update={"tenant_id": "t2"}))
    assert await store.list_messages("t2", Page(), run_id=first.id) == []
    assert await store.delete_run_messages("t2", first.id) == 0
    assert len(await store.list_messages("t1", Page(), run_id=first.id)) == 4


async def test_an_ended_runs_listing_stops_a_little_after_its_end(store: Store) -> None:
    """DynamoDB reads an ended run's window only up to its end plus the clock skew (a group's later runs
    are not read for it): a last message stamped a little after the end (the ender's clock behind the
    committer's) still lists, a later run's never does, and paging and deleting are as for a running run."""
    first, queued, history = await _two_interleaved_runs(store)
    ended = first.model_copy(update={"status": "completed", "completed_at": stamp(int(3.8 * SECOND_US))})
    await store.update_run(ended, expect_version=first.version)
    later = run(group_id="g1", created=50 * SECOND_US)
    await store.put_run(later)
    await _committed(store, later, "0000", 50.5)
    own = [m for m in history if m.run_id == first.id]
    assert own[-1].position > f"{EPOCH_NS + int(3.8 * SECOND_NS):020d}", "stamped after the run's completed_at"
    assert await store.list_messages("t1", Page(order="asc"), run_id=first.id) == own
    assert await store.list_messages("t1", Page(order="desc", limit=2), run_id=first.id) == own[::-1][:2]
    page = Page(order="asc", after=own[1].id, before=own[-1].id)
    assert await store.list_messages("t1", page, run_id=first.id) == own[2:3]
    assert await store.delete_run_messages("t1", first.id) == 4
    assert [m.run_id for m in await store.list_messages("t1", Page(), group_id="g1")].count(later.id) == 1
    assert len(await store.list_messages("t1", Page(), run_id=queued.id)) == 3
