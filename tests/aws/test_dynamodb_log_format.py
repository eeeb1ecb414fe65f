"""The DynamoDB event log's records: one conditional put an append, compressed, and the first format still served.

The contract suite checks what every store promises through one store
instance; these check what only this adapter's format can break: writers in
different processes (each with its own knowledge of the log's end), the
write an append costs, the stored shape, and logs begun in the first format
(a `LOG` head and records keyed by their last `seq_id`) read and continued
byte for byte.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

import pytest

from chorus.errors import Conflict, LogMoved
from chorus.store.base import LOG_END
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_log_legacy import LegacyEventLog
from chorus.store.dynamodb_wire import INLINE_MAX
from chorus.store.records import RunRecord
from support.dynamodb import TABLE, count_calls, lost_responses

TOKEN = '{"id":"message-0c4f9a2e-5b7d-4e0f-9a55-1f3c2b6d7e80","run_id":"run-7d2e","message_type":"assistant_message"'


def token(i: int) -> str:
    return TOKEN + f',"content":"t{i}","seq_id":{i}}}'


async def put_run(store: DynamoDBStore, run_id: str) -> None:
    await store.put_run(
        RunRecord(tenant_id="t1", id=run_id, created_at="2026-01-01T00:00:00+00:00", agent_id="agent-1")
    )


def run_items(dynamodb: Any, run_id: str) -> list[dict[str, Any]]:
    query = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": f"T#t1#RUN#{run_id}"}}}
    items: list[dict[str, Any]] = dynamodb.query(TableName=TABLE, **query)["Items"]
    return items


@pytest.fixture
async def stores(dynamodb: Any) -> Any:
    """Two stores on one table: two processes, each knowing only what it wrote or read."""
    first, second = DynamoDBStore(dynamodb, TABLE), DynamoDBStore(dynamodb, TABLE)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def test_an_append_is_one_put_of_a_compressed_record(dynamodb: Any, stores: Any) -> None:
    store, _ = stores
    calls = count_calls(dynamodb)
    await store.append_events("t1", "run-1", 1, [token(1)])
    events = [token(i) for i in range(2, 12)]
    await store.append_events("t1", "run-1", 2, events)
    assert calls == {"PutItem": 2}, "a writer that wrote the record before needs no read and no transaction"
    (one, many) = sorted(run_items(dynamodb, "run-1"), key=lambda i: i["SK"]["S"])
    assert (one["SK"]["S"], one["last"]["N"], many["SK"]["S"], many["last"]["N"]) == (
        "E#000000000001",
        "1",
        "E#000000000002",
        "11",
    )
    raw = "\n".join(events).encode()
    assert zlib.decompress(many["z"]["B"]) == raw
    assert len(many["z"]["B"]) < len(raw) / 4, "token events repeat their ids"
    assert "closed" not in many and "data" not in many


async def test_writers_in_two_processes_keep_the_log_gapless_and_closed(stores: Any) -> None:
    a, b = stores
    await a.append_events("t1", "run-1", 1, ["a1", "a2"])
    with pytest.raises(LogMoved):
        await b.append_events("t1", "run-1", 4, ["gap"])  # b reads the end first: a gap is refused
    await b.append_events("t1", "run-1", 3, ["b3"])
    with pytest.raises(LogMoved):
        await a.append_events("t1", "run-1", 3, ["stale"])  # a still believes the log ends at 2
    assert await a.last_seq("t1", "run-1") == 3
    await a.append_events("t1", "run-1", 4, ["a4", LOG_END])
    for writer, seq in ((b, 4), (b, 6), (a, 6)):
        with pytest.raises(Conflict, match="complete"):
            await writer.append_events("t1", "run-1", seq, ["late"])
    with pytest.raises(Conflict, match="complete"):
        await b.append_events("t1", "run-1", 2, ["behind"])
    expected = list(enumerate(["a1", "a2", "b3", "a4", LOG_END], start=1))
    for reader in (a, b):
        assert await reader.read_events("t1", "run-1", 0, 10) == expected
        for after in range(6):
            assert await reader.read_events("t1", "run-1", after, 1) == expected[after : after + 1]


async def test_a_run_deleted_and_written_again_starts_a_new_log(stores: Any) -> None:
    store, _ = stores
    await put_run(store, "run-1")
    await store.append_events("t1", "run-1", 1, ["a", "b"])
    await store.delete_run("t1", "run-1")
    with pytest.raises(LogMoved):
        await store.append_events("t1", "run-1", 3, ["c"])  # what it knew of the end went with the log
    await store.append_events("t1", "run-1", 1, ["new"])
    assert await store.read_events("t1", "run-1", 0, 10) == [(1, "new")]


async def test_a_record_that_compresses_past_the_item_limit_goes_to_parts(dynamodb: Any, stores: Any) -> None:
    writer, reader = stores
    await put_run(writer, "run-1")
    noise = os.urandom(INLINE_MAX).hex()  # hex of random bytes: compressed, still over the inline limit
    await writer.append_events("t1", "run-1", 1, ["a", f'{{"pad":"{noise}"}}', "b"])
    records = {i["SK"]["S"]: i for i in run_items(dynamodb, "run-1") if i["SK"]["S"].startswith("E#")}
    assert sorted(records) == ["E#000000000001", "E#000000000002", "E#000000000003"], "a large event goes alone"
    assert "parts" in records["E#000000000002"] and "z" not in records["E#000000000002"]
    assert await reader.read_events("t1", "run-1", 1, 2) == [(2, f'{{"pad":"{noise}"}}'), (3, "b")]
    await writer.delete_run("t1", "run-1")
    parts = {"KeyConditionExpression": "PK = :pk", "ExpressionAttributeValues": {":pk": {"S": "T#t1#RUN#run-1#PART"}}}
    assert dynamodb.query(TableName=TABLE, **parts)["Items"] == []


async def test_a_resume_in_batches_reads_one_query_a_batch(dynamodb: Any, stores: Any) -> None:
    writer, reader = stores
    events = [token(i) for i in range(1, 301)]
    for first in range(1, 301, 100):
        await writer.append_events("t1", "run-1", first, events[first - 1 : first + 99])
    calls = count_calls(dynamodb)
    got: list[tuple[int, str]] = []
    while batch := await reader.read_events("t1", "run-1", len(got), 40):
        got += batch
    assert got == list(enumerate(events, start=1))
    assert calls["Query"] == 300 // 40 + 2, "a batch ending inside a record starts the next read there"


async def test_a_log_begun_in_the_first_format_is_read_and_continued_in_it(dynamodb: Any, stores: Any) -> None:
    new, fresh = stores
    old = LegacyEventLog(new.table, new._log_ttl, new.events_per_item)
    old.append("t1", "run-1", 1, ["e1", "e2", "e3"])  # what a store of the first format wrote
    old.append("t1", "run-1", 4, ["e4"])
    assert await new.last_seq("t1", "run-1") == 4
    await new.append_events("t1", "run-1", 5, ["e5", "e6"])
    with pytest.raises(LogMoved):
        await fresh.append_events("t1", "run-1", 5, ["dup"])
    await fresh.append_events("t1", "run-1", 7, [LOG_END])
    with pytest.raises(Conflict):
        await new.append_events("t1", "run-1", 8, ["late"])
    keys = sorted(i["SK"]["S"] for i in run_items(dynamodb, "run-1"))
    assert keys == ["EV#000000000003", "EV#000000000004", "EV#000000000006", "EV#000000000007", "LOG"]
    expected = list(enumerate(["e1", "e2", "e3", "e4", "e5", "e6", LOG_END], start=1))
    for reader in (new, fresh):
        assert await reader.last_seq("t1", "run-1") == 7
        for after in range(8):
            for limit in (1, 3, 100):
                assert await reader.read_events("t1", "run-1", after, limit) == expected[after : after + limit]


async def test_an_append_whose_lost_response_was_retried_still_succeeds(dynamodb: Any, stores: Any) -> None:
    """boto3 re-sends a put whose response was lost; the re-send finds the record taken, by this very put."""
    store, other = stores
    await store.append_events("t1", "run-1", 1, ["e1"])
    assert await other.read_events("t1", "run-1", 0, 10) == [(1, "e1")]  # other knows the log ends at 1
    with lost_responses(dynamodb, "put_item"):
        await store.append_events("t1", "run-1", 2, ["e2"])
        with pytest.raises(LogMoved):
            await other.append_events("t1", "run-1", 2, ["not ours"])  # its put is refused: the record is another's
    assert await store.read_events("t1", "run-1", 0, 10) == [(1, "e1"), (2, "e2")]
