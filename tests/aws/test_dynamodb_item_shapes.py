"""What a run writes to DynamoDB, item by item, and the items written before that still read.

A write costs a unit per KB of its item in the table, and the same again in every index the
item is in. So a message goes only into the one index something reads it from: its group's
history (a run's messages are read from there), or its run's when it has no group. A run item
holds only what a condition or filter reads besides its body, so that an ordinary run's item
stays under the 1 KB that would double every write of it.
Items stored before carry more (`G1`/`G3`/`G4` and id attributes on messages, `group_id`/`agent_id`
on runs): they must list, load, update and delete as they did.
"""

from __future__ import annotations

import zlib
from typing import Any

import httpx

from chorus.store.base import Store
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_history import RUN_WINDOW_SKEW_NS
from chorus.store.dynamodb_keys import INDEXES, ORDER_KEY, listing, record_key, run_messages, s
from chorus.store.records import Page, Record
from support import create_agent, create_group, payloads, stream
from support.benchmarks import load_benchmark
from support.contract_records import message, run, stamp, step
from support.dynamodb import TABLE

units = load_benchmark("dynamodb_units")
INDEX_KEYS = {name: (attribute, ORDER_KEY) for name, attribute in INDEXES.items()}
GROUPED_MESSAGE_INDEXES = {"G2"}


def written_before(item: dict[str, Any], record: Record, **attributes: str) -> dict[str, Any]:
    """`item` as a store wrote it before: its body compressed without the preset dictionary, and `attributes`."""
    assert "zd" in item
    old = {name: value for name, value in item.items() if name != "zd"}
    return {
        **old,
        "z": {"B": zlib.compress(record.model_dump_json().encode())},
        **{k: s(v) for k, v in attributes.items()},
    }


def raw(dynamodb: Any, key: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
    return item


async def test_a_round_robin_run_indexes_messages_by_group_only_and_keeps_its_run_item_under_1_kb(
    api: tuple[httpx.AsyncClient, Store], dynamodb: Any
) -> None:
    client, store = api
    agents = [await create_agent(client, f"A{i}", tokens=20) for i in range(3)]
    group = await create_group(client, [a["id"] for a in agents])
    with units.metering(INDEX_KEYS) as meter:
        events = await stream(client, group["id"], {"input": "go"})
    run_id = payloads(events)[0]["run_id"]
    finished = await store.get_run("default", run_id)
    assert finished.status == "completed" and finished.usage is not None
    message_indexes = {shape.split(" ")[0] for shape in meter.by_index if shape.endswith("#MESSAGE")}
    assert message_indexes == {"by_group"}, meter.by_index
    stored = await store.list_messages("default", Page(limit=100), run_id=run_id)
    assert len(stored) == 4, "the input and one reply of each agent"
    for m in stored:
        item = raw(dynamodb, record_key("Message", "default", m.id))
        assert set(item) & set(INDEXES.values()) == GROUPED_MESSAGE_INDEXES, item.keys()
    run_item = raw(dynamodb, record_key("Run", "default", run_id))
    assert units.item_size(run_item) < units.WRITE_UNIT_BYTES, {k: units.value_size(v) for k, v in run_item.items()}


async def test_messages_stored_in_the_tenant_agent_and_run_indexes_before_list_and_delete_as_now(dynamodb: Any) -> None:
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    r = run(group_id="g1")
    await store.put_run(r)
    new, old = message(r, "0001", 0, position=1), message(r, "0001", 1, position=2, agent_id="a1")
    await store.commit_step(step(r, "0001"), [new])
    item, _ = store._message_item(old)
    shaped_before = written_before(
        item,
        old,
        G1=listing("Message", "t1"),
        G3=listing("Message", "t1", agent_id="a1"),
        G4=run_messages("t1", r.id),
        group_id="g1",
        agent_id="a1",
        run_id=r.id,
    )
    dynamodb.put_item(TableName=TABLE, Item=shaped_before)
    assert await store.list_messages("t1", Page(order="asc"), group_id="g1") == [new, old]
    assert await store.list_messages("t1", Page(order="desc", after=new.id), run_id=r.id) == []
    assert [x["id"] for x in await store.history_page("t1", Page(order="desc"), run_id=r.id)] == [old.id, new.id]
    assert await store.delete_run_messages("t1", r.id) == 2
    left = dynamodb.scan(TableName=TABLE, IndexName="by_tenant")["Items"]
    assert not [i for i in left if i["SK"]["S"] == "MSG"], "the old item's tenant index entry went with it"
    await store.commit_step(step(r, "0002"), [new])
    dynamodb.put_item(TableName=TABLE, Item=shaped_before)
    assert await store.delete_group_messages("t1", "g1") == 2
    by_agent = dynamodb.scan(TableName=TABLE, IndexName="by_agent")["Items"]
    assert not [i for i in by_agent if i["SK"]["S"] == "MSG"], "nor its agent index entry"
    assert await store.list_messages("t1", Page(), run_id=r.id) == []
    await store.close()


async def test_a_message_without_a_group_is_indexed_by_its_run_and_lists_and_deletes_by_it(dynamodb: Any) -> None:
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    r = run(group_id=None)  # a sleeptime agent's run: no group's history holds its messages
    await store.put_run(r)
    m = message(r, "0001", 0, position=1)
    await store.commit_step(step(r, "0001"), [m])
    item = raw(dynamodb, record_key("Message", "t1", m.id))
    assert set(item) & set(INDEXES.values()) == {"G4"}, item.keys()
    assert await store.list_messages("t1", Page(), run_id=r.id) == [m]
    assert await store.delete_run_messages("t1", r.id) == 1
    assert await store.list_messages("t1", Page(), run_id=r.id) == []
    await store.close()


async def test_listing_an_ended_run_reads_no_later_run_of_its_group(dynamodb: Any) -> None:
    """A run's messages are read from its group's partition: once it ended, only up to its end (plus
    the clock skew), however much the group talked since."""
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    first = run(group_id="g1", created=0)
    await store.put_run(first)
    await store.commit_step(step(first, "0001"), [message(first, "0001", 0, position=1_000)])
    ended = first.model_copy(update={"status": "completed", "completed_at": stamp(1)})
    await store.update_run(ended, expect_version=first.version)
    later = run(group_id="g1", created=0)
    await store.put_run(later)
    late_ns = 2 * RUN_WINDOW_SKEW_NS
    rows = [message(later, f"{i:04d}", 0, position=late_ns + i) for i in range(30)]
    await store.commit_step(step(later, "0001"), rows[:20])
    await store.commit_step(step(later, "0002"), rows[20:])
    scanned: list[int] = []
    dynamodb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: scanned.append(parsed["ScannedCount"])
    )
    assert len(await store.list_messages("t1", Page(), run_id=first.id)) == 1
    assert sum(scanned) == 1, "the later run's rows were read"
    assert len(await store.list_messages("t1", Page(), run_id=later.id)) == 30
    await store.close()


async def test_a_run_item_stored_with_its_group_and_agent_attributes_loads_lists_and_updates(dynamodb: Any) -> None:
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    r = run(group_id="g1", agent_id="a1", status="running")
    item, _ = store._run_item(r)
    assert not {"group_id", "agent_id"} & set(item), "in G2/G3 and the body, not again"
    dynamodb.put_item(TableName=TABLE, Item=written_before(item, r, group_id="g1", agent_id="a1"))
    assert await store.get_run("t1", r.id) == r
    assert [x.id for x in await store.list_runs("t1", Page(), group_id="g1", agent_id="a1")] == [r.id]
    assert await store.list_runs("t1", Page(), group_id="g1", agent_id="a2") == []
    ended = await store.update_run(r.model_copy(update={"status": "completed"}), expect_version=0)
    assert await store.get_run("t1", r.id) == ended
    assert not {"group_id", "agent_id"} & set(raw(dynamodb, record_key("Run", "t1", r.id))), (
        "rewritten in the new shape"
    )
    assert [x.id for x in await store.list_runs("t1", Page(), group_id="g1", agent_id="a1")] == [r.id]
    await store.close()


async def test_a_free_groups_claim_is_one_put_and_no_read(dynamodb: Any) -> None:
    """A group is free between its runs, so the claim is put as if it were, and its holder is read
    only from a refused put's answer; a held group costs that refused put and the holder's status."""
    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    first, second = run(status="running"), run(status="created")
    for r in (first, second):
        await store.put_run(r)
    calls: list[str] = []
    dynamodb.meta.events.register("before-call.dynamodb", lambda model, **_: calls.append(model.name))
    assert await store.claim_group("t1", "g1", first.id) is None
    assert calls == ["PutItem"]
    calls.clear()
    assert await store.claim_group("t1", "g1", second.id) == first.id
    assert calls == ["PutItem", "GetItem"], "the refused put names the holder; its run is read for its status"
    calls.clear()
    assert await store.claim_group("t1", "g1", first.id) is None, "its own claim (a retried put) is kept"
    assert calls == ["PutItem"]
    await store.close()
