"""The commit fence of the `store` port: no step is committed to a run that has ended.

A worker still running a run after it was cancelled or rolled back (a Step Lambda
that StopExecution does not stop) must not add a step, nor put back messages a
rollback deleted. The check is part of the commit's own transaction on each adapter.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest

from chorus.errors import AlreadyCommitted, RunEnded
from chorus.store import dynamodb_keys as keys
from chorus.store.base import Store
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.records import Page
from support.contract_records import message, run, step


@pytest.mark.parametrize("status", ["completed", "failed", "cancelled"])
async def test_a_commit_to_an_ended_run_is_refused_with_nothing_written(store: Store, status: str) -> None:
    r = run()
    await store.put_run(r)
    await store.commit_step(step(r, "0001"), [message(r, "0001", 0)])
    stored = await store.get_run("t1", r.id)
    await store.update_run(stored.model_copy(update={"status": status}), expect_version=stored.version)
    with pytest.raises(RunEnded):
        await store.commit_step(step(r, "0002"), [message(r, "0002", 0), message(r, "0002", 1)])
    assert [s.step_key for s in await store.list_steps("t1", r.id)] == ["0001"]
    assert len(await store.list_messages("t1", Page(), run_id=r.id)) == 1


async def test_a_step_beyond_one_transaction_to_an_ended_run_writes_none_of_it(store: Store) -> None:
    r = run()
    await store.put_run(r.model_copy(update={"status": "cancelled"}))
    many = [message(r, "0001", i, position=i, text="m" * 2_000) for i in range(130)]
    with pytest.raises(RunEnded):
        await store.commit_step(step(r, "0001"), many)
    assert await store.list_steps("t1", r.id) == []
    assert await store.list_messages("t1", Page(limit=1000), run_id=r.id) == []


async def test_a_live_run_commits_and_a_repeat_is_still_already_committed(store: Store) -> None:
    r = run()
    await store.put_run(r.model_copy(update={"status": "running"}))
    await store.commit_step(step(r, "0001"), [message(r, "0001", 0)])
    with pytest.raises(AlreadyCommitted):
        await store.commit_step(step(r, "0001"), [message(r, "0001", 0)])
    ended = await store.get_run("t1", r.id)
    await store.update_run(ended.model_copy(update={"status": "cancelled"}), expect_version=ended.version)
    with pytest.raises(RunEnded):
        await store.commit_step(step(r, "0001"), [message(r, "0001", 0)])


async def test_the_fence_reads_the_run_of_the_step_tenant_only(store: Store) -> None:
    ended = run(status="cancelled")
    await store.put_run(ended)
    other = ended.model_copy(update={"tenant_id": "t2", "status": "running"})
    await store.put_run(other)
    await store.commit_step(step(other, "0001"), [message(other, "0001", 0)])
    assert len(await store.list_steps("t2", other.id)) == 1


async def test_a_run_ended_between_the_transactions_of_a_large_step_gets_none_of_the_later_ones(
    store: Store,
) -> None:
    """DynamoDB commits a step beyond one transaction in several: the run check is in each, so the
    messages after a cancel (or a rollback's delete) between them are not written."""
    if not isinstance(store, DynamoDBStore):
        pytest.skip("SQLite commits a step in one transaction")
    r = run()
    await store.put_run(r.model_copy(update={"status": "running"}))
    many = [message(r, "0001", i, position=i, text="m" * 2_000) for i in range(130)]
    table = store.table
    transact = table.transact
    done: list[int] = []

    def end_after_first(actions: list[dict[str, Any]]) -> None:
        transact(actions)
        if not done:
            done.append(len(actions))
            table.call(
                "update_item",
                TableName=table.name,
                Key=keys.record_key("Run", r.tenant_id, r.id),
                UpdateExpression="SET #s = :c",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":c": {"S": "cancelled"}},
            )

    with mock.patch.object(table, "transact", end_after_first), pytest.raises(RunEnded):
        await store.commit_step(step(r, "0001"), many)
    written = await store.list_messages("t1", Page(limit=1000, order="asc"), run_id=r.id)
    assert [m.id for m in written] == [m.id for m in many[: done[0] - 2]], "only the first transaction's"
