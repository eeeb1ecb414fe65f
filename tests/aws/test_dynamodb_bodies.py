"""Record bodies on DynamoDB: compressed with the preset dictionary when written now, and items
written as text or compressed without it before still load.

A message or run item is ~1.4 KB with its JSON as text, so each of its writes
cost 2 units in the table and 2 in every index it is in; compressed it is
under 1 KB. Items stored before (`data`, text; `z`, no dictionary) must read
as they did, and the dictionary can never change under them.
"""

from __future__ import annotations

import os
import zlib
from typing import Any

from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_preset import PRESET
from chorus.store.dynamodb_wire import INLINE_MAX, DynamoDBTable
from chorus.store.records import MessageRecord, Page, RunRecord, StepRecord
from support.dynamodb import TABLE

CREATED = "2026-01-01T00:00:00.000000+00:00"
RUN = "run-0b2f4ac1-baa2-4949-95a5-64ab1d75eeb3"
GROUP = "group-6b644f1f-1d69-44cc-a243-1403ded76f31"
AGENT = "agent-4de0db2b-4ac5-40c8-ad1b-989fe293e8b2"


def message(i: int) -> MessageRecord:
    mid = f"message-5282f4b6-f9f2-4dd7-b5be-6694e01191b{i}"
    body = {"id": mid, "date": CREATED, "name": "A0", "message_type": "assistant_message", "otid": mid[8:]}
    body |= {"sender_id": AGENT, "step_id": "step-70da7a77", "run_id": RUN, "content": "A0 (turn 1):"}
    position = f"01796607064269899855:{RUN}:00001.0000.001:000{i}"
    return MessageRecord.model_validate(
        {"tenant_id": "t1", "id": mid, "created_at": CREATED, "group_id": GROUP, "agent_id": AGENT, "run_id": RUN}
        | {"step_key": "00001.0000.001", "index": i, "position": position, "message": body}
    )


def item_bytes(item: dict[str, Any]) -> int:
    return sum(len(k) + len(v.get("S", v.get("B", b""))) + (4 if "N" in v else 0) for k, v in item.items())


def test_bodies_round_trip_compressed_as_text_or_in_parts(dynamodb: Any) -> None:
    table = DynamoDBTable(dynamodb, TABLE)
    key = {"PK": {"S": "T#t1#X#1"}, "SK": {"S": "X"}}
    record = message(1).model_dump_json()
    attrs, parts = table.pack(key, record)
    assert set(attrs) == {"zd"} and parts == [] and len(attrs["zd"]["B"]) < len(zlib.compress(record.encode())) * 0.8
    assert table.body({**key, **attrs}) == record
    assert table.body({**key, "z": {"B": zlib.compress(record.encode())}}) == record, "compressed before the preset"
    assert table.pack(key, "{}") == ({"data": {"S": "{}"}}, []), "what compression would not shrink stays text"
    noise = os.urandom(INLINE_MAX + 100_000).hex()  # over the inline limit even compressed: text in parts
    attrs, parts = table.pack(key, noise)
    assert set(attrs) == {"parts"} and b"".join(p["part"]["B"] for p in parts) == noise.encode()
    table.write_parts(parts)
    assert table.body({**key, **attrs}) == noise


def test_the_preset_dictionary_is_the_one_stored_bodies_were_compressed_with() -> None:
    """Every `zd` item ever written decodes with exactly these bytes: a change must be a new attribute."""
    assert (len(PRESET), zlib.crc32(PRESET)) == (3526, 297236662)


async def test_a_message_item_is_under_one_write_unit_and_old_text_items_load(dynamodb: Any) -> None:
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    step = StepRecord(tenant_id="t1", id="step-1", created_at=CREATED, run_id=RUN, step_key="00001.0000.001")
    await store.commit_step(step, [message(1)])
    key = {"PK": {"S": f"T#t1#MSG#{message(1).id}"}, "SK": {"S": "MSG"}}
    stored = dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    assert "data" not in stored and item_bytes(stored) < 1024
    # what a store wrote before bodies were compressed: the same item with its JSON as text
    old = message(2)
    item, _ = store._message_item(old)
    item.pop("zd")
    dynamodb.put_item(TableName=TABLE, Item={**item, "data": {"S": old.model_dump_json()}})
    run = RunRecord(tenant_id="t1", id=RUN, created_at=CREATED, agent_id=AGENT, group_id=GROUP)
    run_item, _ = store._run_item(run)
    run_item.pop("zd")
    dynamodb.put_item(TableName=TABLE, Item={**run_item, "data": {"S": run.model_dump_json()}})
    listed = await store.list_messages("t1", Page(order="asc"), run_id=RUN)  # found through the old run item
    assert listed == [message(1), old]
    assert await store.get_run("t1", RUN) == run
    updated = await store.update_run(run.model_copy(update={"status": "running"}), expect_version=0)
    assert await store.get_run("t1", RUN) == updated
    await store.close()
