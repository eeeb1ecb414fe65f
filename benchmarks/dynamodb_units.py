"""DynamoDB request units of every request moto serves, computed as AWS bills them on demand.

moto answers `ReturnConsumedCapacity` with fixed figures (1.0 or 0.5 per
call, whatever the item), so the meter computes units itself from item
sizes, following the DynamoDB developer guide ("Read/write capacity mode",
"Managing throughput for global secondary indexes"):

- a write (PutItem, UpdateItem, DeleteItem, each BatchWriteItem request)
  costs ceil(size / 1 KB) units of the larger of the item before and after;
  each global secondary index whose keys the item has before or after costs
  its own write (projection ALL: the same size), two when the index key
  changes (a delete and a put); a failed condition still costs the table write;
- TransactWriteItems: twice the table's units per item, a ConditionCheck
  included (the index updates follow at the ordinary rate);
- a read costs ceil(size / 4 KB) units, half for an eventually consistent
  read (every index read is); a Query sums the sizes of the items it
  returns before rounding (items its filter dropped are counted at the
  mean size of those it returned); a missing item still costs the minimum;
  TransactGetItems twice.

Item size: attribute names plus values (strings and binaries by their
bytes, numbers by about one byte per two digits plus one, booleans and nulls
one byte, lists and maps 3 bytes plus their elements), as the guide states.
"""

from __future__ import annotations

import contextlib
import json
import math
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

from moto.dynamodb.responses import DynamoHandler

WRITE_UNIT_BYTES = 1024
READ_UNIT_BYTES = 4096


def value_size(value: dict[str, Any]) -> int:
    (kind, raw), *_ = value.items()
    if kind in ("S", "B"):
        return len(raw.encode() if isinstance(raw, str) else raw)
    if kind == "N":
        return math.ceil(len(str(raw).lstrip("-").replace(".", "")) / 2) + 1
    if kind in ("BOOL", "NULL"):
        return 1
    if kind in ("SS", "BS", "NS"):
        return sum(value_size({kind[0]: element}) for element in raw)
    if kind == "L":
        return 3 + sum(1 + value_size(element) for element in raw)
    if kind == "M":
        return 3 + sum(1 + len(name.encode()) + value_size(element) for name, element in raw.items())
    raise ValueError(f"unknown attribute type {kind}")


def item_size(item: dict[str, Any] | None) -> int:
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def write_units(size: int) -> int:
    return max(1, math.ceil(size / WRITE_UNIT_BYTES))


def read_units(size: int, consistent: bool) -> float:
    units = max(1, math.ceil(size / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


@dataclass(frozen=True, slots=True)
class Served:
    """One request moto served in this process: when (`time.perf_counter`), and the CPU it took."""

    start: float
    end: float
    cpu_s: float


@dataclass
class Meter:
    """Units and requests since it started, by operation; thread-safe (Map iterations run on threads)."""

    indexes: dict[str, tuple[str, str]]
    """Each global secondary index's (hash, range) key attribute names."""
    write_units: float = 0.0
    read_units: float = 0.0
    requests: Counter[str] = field(default_factory=Counter)
    units: Counter[str] = field(default_factory=Counter)
    """Read and write units by operation."""
    by_index: Counter[str] = field(default_factory=Counter)
    """Write units per index and partition shape (`by_tenant T#<tenant>#RUN`): an index partition takes
    at most 1,000 a second, so these say how many runs a second one tenant, group or agent can make."""
    served: list[Served] = field(default_factory=list)
    """Every request moto served, in order: on AWS, time on the network instead."""
    local: threading.local = field(default_factory=threading.local)
    """`local.moto_cpu_s`: the CPU time moto took serving the requests of this thread so far."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def snapshot(self) -> tuple[float, float, Counter[str], Counter[str], Counter[str]]:
        with self.lock:
            counters = Counter(self.requests), Counter(self.units), Counter(self.by_index)
            return self.write_units, self.read_units, *counters

    def add(self, operation: str, writes: float, reads: float) -> None:
        with self.lock:
            self.write_units += writes
            self.read_units += reads
            self.requests[operation] += 1
            self.units[operation] += writes + reads

    def item_write(self, before: dict[str, Any] | None, after: dict[str, Any] | None, failed: bool) -> float:
        """Table and index units of one item write (the index part also added to `by_index`)."""
        table, indexes = self.split_write(before, after, failed)
        self.count_indexes(indexes)
        return table + sum(indexes.values())

    def split_write(
        self, before: dict[str, Any] | None, after: dict[str, Any] | None, failed: bool
    ) -> tuple[float, Counter[str]]:
        """(table units, units per index) of one item write."""
        table = float(write_units(max(item_size(before), item_size(after))))
        indexes: Counter[str] = Counter()
        if failed:
            return table, indexes
        for name, (hash_key, range_key) in self.indexes.items():
            old = _index_key(before, hash_key, range_key)
            new = _index_key(after, hash_key, range_key)
            if old is None and new is None:
                continue
            if old is not None and new is not None and old != new:
                indexes[f"{name} {_shape(old[0])}"] += write_units(item_size(before))
                indexes[f"{name} {_shape(new[0])}"] += write_units(item_size(after))
            else:
                key = new if new is not None else old
                assert key is not None
                indexes[f"{name} {_shape(key[0])}"] += write_units(item_size(after if new is not None else before))
        return table, indexes

    def count_indexes(self, indexes: Counter[str]) -> None:
        with self.lock:
            self.by_index.update(indexes)


def _shape(partition: str) -> str:
    """An index partition's key with its ids generalised (`T#<tenant>#GROUP#<group>#MESSAGE`): one
    shape is one partition per tenant, group, agent or run, which is what its write rate is per."""
    value = json.loads(partition)["S"] if partition.startswith("{") else partition
    value = re.sub(r"\b(agent|group|run|message|step)-[0-9a-f-]{8,}", r"<\1>", value)
    return re.sub(r"^T#[^#]+#", "T#<tenant>#", value)


def _index_key(item: dict[str, Any] | None, hash_key: str, range_key: str) -> tuple[str, str] | None:
    if not item or hash_key not in item or range_key not in item:
        return None
    return json.dumps(item[hash_key]), json.dumps(item[range_key])


def _stored(handler: DynamoHandler, table: str, key: dict[str, Any]) -> dict[str, Any] | None:
    try:
        found = handler.dynamodb_backend.get_item(table, key)
    except Exception:  # a missing table: the request fails on its own
        return None
    return None if found is None else dict(found.to_json()["Attributes"])


def _key_of(handler: DynamoHandler, table: str, item: dict[str, Any]) -> dict[str, Any]:
    schema = handler.dynamodb_backend.get_table(table).schema
    return {k["AttributeName"]: item[k["AttributeName"]] for k in schema if k["AttributeName"] in item}


def _write(meter: Meter, handler: DynamoHandler, kind: str, op: dict[str, Any], failed: bool) -> dict[str, Any]:
    """Before-state of one write, for `_settle` to price once it has run."""
    table = op["TableName"]
    key = op.get("Key") or _key_of(handler, table, op.get("Item", {}))
    return {"kind": kind, "table": table, "key": key, "item": op.get("Item"), "before": _stored(handler, table, key)}


def _settle(meter: Meter, handler: DynamoHandler, pending: dict[str, Any], failed: bool, factor: int = 1) -> float:
    """Units of one write once it ran; `factor` 2 in a transaction, which doubles the table's
    units (index updates are propagated after it, at the ordinary rate)."""
    before = pending["before"]
    if pending["kind"] == "ConditionCheck":
        return float(factor * write_units(item_size(before)))
    after = None if pending["kind"] == "Delete" else _stored(handler, pending["table"], pending["key"])
    if failed:
        after = pending["item"] or after
    table, indexes = meter.split_write(before, after, failed)
    meter.count_indexes(indexes)
    return factor * table + sum(indexes.values())


def _query_reads(body: dict[str, Any], response: dict[str, Any]) -> float:
    items = response.get("Items", [])
    sizes = [item_size(i) for i in items]
    scanned = int(response.get("ScannedCount", len(items)))
    mean = (sum(sizes) / len(sizes)) if sizes else 0
    total = sum(sizes) + max(0, scanned - len(items)) * mean
    consistent = bool(body.get("ConsistentRead")) and "IndexName" not in body
    return read_units(int(total), consistent)


def price_request(meter: Meter, handler: DynamoHandler, action: str, body: dict[str, Any], call: Any) -> Any:
    """Run moto's handler for one request and add what it costs to `meter`."""

    if action in ("PutItem", "UpdateItem", "DeleteItem"):
        pending = [_write(meter, handler, action.removesuffix("Item"), body, False)]
        result = call()
        failed = result[0] >= 400
        meter.add(action, sum(_settle(meter, handler, p, failed) for p in pending), 0.0)
        return result
    if action == "BatchWriteItem":
        pending = []
        for table, requests in body.get("RequestItems", {}).items():
            for request in requests:
                if "PutRequest" in request:
                    op = {"TableName": table, "Item": request["PutRequest"]["Item"]}
                    pending.append(_write(meter, handler, "Put", op, False))
                else:
                    op = {"TableName": table, "Key": request["DeleteRequest"]["Key"]}
                    pending.append(_write(meter, handler, "Delete", op, False))
        result = call()
        meter.add(action, sum(_settle(meter, handler, p, result[0] >= 400) for p in pending), 0.0)
        return result
    if action == "TransactWriteItems":
        pending = []
        for entry in body.get("TransactItems", []):
            ((kind, op),) = entry.items()
            pending.append(_write(meter, handler, kind, op, False))
        result = call()
        meter.add(action, sum(_settle(meter, handler, p, result[0] >= 400, factor=2) for p in pending), 0.0)
        return result
    result = call()
    response = json.loads(result[2]) if result[0] < 400 and result[2] else {}
    if action == "GetItem":
        reads = read_units(item_size(response.get("Item")), bool(body.get("ConsistentRead")))
    elif action == "Query":
        reads = _query_reads(body, response)
    elif action == "BatchGetItem":
        reads = sum(
            read_units(item_size(item), bool(body["RequestItems"][table].get("ConsistentRead")))
            for table, items in response.get("Responses", {}).items()
            for item in items
        )
    elif action == "TransactGetItems":
        reads = sum(2 * read_units(item_size(r.get("Item")), True) for r in response.get("Responses", []))
    else:
        reads = 0.0
    meter.add(action, 0.0, reads)
    return result


@contextlib.contextmanager
def metering(indexes: dict[str, tuple[str, str]]) -> Iterator[Meter]:
    """Meter every DynamoDB request moto serves while inside (patched over whatever patch is in place)."""
    meter = Meter(indexes)
    inner = DynamoHandler.call_action
    serial = threading.RLock()  # an item's before-state, the write and its after-state, as one

    def call_action(self: DynamoHandler) -> Any:
        action = self._get_action()
        body = dict(getattr(self, "params", {}) or {})
        with serial:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return price_request(meter, self, action, body, lambda: inner(self))
            finally:
                used = time.thread_time() - cpu
                meter.served.append(Served(start, time.perf_counter(), used))
                meter.local.moto_cpu_s = getattr(meter.local, "moto_cpu_s", 0.0) + used

    with mock.patch.object(DynamoHandler, "call_action", call_action):
        yield meter
