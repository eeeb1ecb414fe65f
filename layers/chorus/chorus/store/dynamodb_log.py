"""The run event log of the DynamoDB store: an append is one conditional put of a compressed record.

A log is a chain of records in its run's partition, each keyed by the first
`seq_id` it holds (`E#<12 digits>`) and holding its `last` `seq_id` and its
events joined by newlines, zlib-compressed in the binary attribute `z` (parts
when even that is over the item limit); the record holding `[DONE]` is marked
`closed`. Token events repeat the same ids, so a record is a fraction of its
events' size, and most flushes fit one write unit.

An append is a put conditioned on `attribute_not_exists(SK)`, made only once
the writer knows that the record ending at `first_seq - 1` exists and is not
closed (it wrote that record, or read it as the log's last). Records are never
changed, so by induction they form one chain from 1: a record starts only
right after another's end, and no two start at one `seq_id`. A writer that is
behind the log's end finds its start taken and is refused (`LogMoved`), one
that would leave a gap never gets past the check, and nothing follows
`[DONE]`. That is one write unit for a small batch where a transaction over a
head item and the record cost four. A batch of several records (over
`RECORD_BYTES`) and the batch that ends a run are one transaction of
conditional puts, the latter with the run record's terminal put (`ending`), so
a log is never complete while its run is not (`Store.end_log`).

What a process knows of a log's end (`_tails`: the last record it wrote or
read, per log, bounded) spares the read before each append, and lets a reader
that consumed whole records start its next read at a record boundary with one
Query. A log begun in the first format (a `LOG` head, records keyed by their
last `seq_id`: `dynamodb_log_legacy`) is recognised by its head and kept in
that format to its end.
"""

from __future__ import annotations

import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from itertools import chain
from typing import Any, Generic, TypeVar

from botocore.exceptions import ClientError

from chorus.errors import Conflict, LogMoved
from chorus.store import dynamodb_keys as keys
from chorus.store.base import LOG_END
from chorus.store.dynamodb_keys import TTL_ATTRIBUTE, Item, n, s
from chorus.store.dynamodb_log_legacy import (
    ENDING_BYTES,
    RECORD_BYTES,
    Ending,
    LegacyEventLog,
    LogItems,
    record_spans,
)
from chorus.store.dynamodb_wire import (
    COMPRESSED,
    DynamoDBTable,
    cancellation_codes,
    chunk_actions,
    is_condition_failure,
)

__all__ = ["RECORD_BYTES", "DynamoDBEventLog", "Ending"]

KNOWN_LOGS = 4096
"""Logs whose end a process remembers (a few words each)."""
NEW_RECORD = "attribute_not_exists(SK)"


V = TypeVar("V")


class Recent(Generic[V]):
    """A bounded map shared by the store's worker threads that forgets its least recently set keys."""

    def __init__(self, size: int = KNOWN_LOGS) -> None:
        self.size = size
        self._items: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> V | None:
        with self._lock:
            return self._items.get(key)

    def set(self, key: str, value: V) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def pop(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)


@dataclass(frozen=True)
class Tail:
    """The last record of a log as far as this process knows: where it ends, whether it holds `[DONE]`."""

    last: int
    closed: bool = False
    legacy: bool = False


class DynamoDBEventLog(LogItems):
    """Synchronous event-log operations (the store runs them on its worker threads)."""

    def __init__(self, table: DynamoDBTable, ttl: Callable[[], dict[str, str]], events_per_item: int) -> None:
        super().__init__(table, ttl, events_per_item)
        self.legacy = LegacyEventLog(table, ttl, events_per_item)
        self._tails: Recent[Tail] = Recent()
        """Per log, the last record this process wrote or read whole."""
        self._cursors: Recent[tuple[int, int]] = Recent()
        """Per log, the (first, last) `seq_id` of the record a read stopped inside: the next read starts there."""

    # what this process knows
    def _known(self, pk: str) -> Tail | None:
        return self._tails.get(pk)

    def _remember(self, pk: str, tail: Tail) -> Tail:
        """Keep `tail` unless a later end is known already (a log only grows; `forget` when it is deleted)."""
        known = self._tails.get(pk)
        if known is None or tail.last >= known.last or tail.legacy:
            self._tails.set(pk, tail)
        return tail

    def forget(self, tenant_id: str, run_id: str) -> None:
        """The run's log is deleted: what was known of it no longer holds."""
        pk = keys.run_pk(tenant_id, run_id)
        self._tails.pop(pk)
        self._cursors.pop(pk)

    def _tail(self, pk: str) -> Tail:
        """The log's last record, read: one Query, newest first, over the records and a first-format head."""
        query = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": s(pk), ":lo": s(keys.record_sk(0)), ":hi": s(keys.LOG_SK)},
            "ProjectionExpression": "SK, #last, last_seq, closed",
            "ExpressionAttributeNames": {"#last": "last"},
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": 1,
        }
        item = next(self.table.query(**query), None)
        if item is None:
            return Tail(0)
        if item["SK"]["S"] == keys.LOG_SK:
            return self._remember(pk, Tail(int(item["last_seq"]["N"]), "closed" in item, legacy=True))
        return self._remember(pk, Tail(int(item["last"]["N"]), "closed" in item))

    # appends
    def append(
        self, tenant_id: str, run_id: str, first_seq: int, events: list[str], ending: Ending | None = None
    ) -> None:
        """Append `events` gaplessly; with `ending`, its actions join the last transaction (the one
        writing `[DONE]`), rebuilt and retried while only they are refused (the run record changed)."""
        pk = keys.run_pk(tenant_id, run_id)
        tail = self._known(pk)
        if (tail is None and first_seq > 1) or (tail is not None and not tail.legacy and tail.last != first_seq - 1):
            tail = self._tail(pk)
        if tail is not None and tail.legacy:
            self.legacy.append(tenant_id, run_id, first_seq, events, ending)
            return
        if tail is not None:
            _check(run_id, tail, first_seq)
        items, parts = self._items(pk, first_seq, events)
        self.table.write_parts(parts)
        if not self._write(run_id, items, parts, ending):
            _check(run_id, self._tail(pk), first_seq)
            raise LogMoved(f"Event log of run {run_id} moved on; cannot append at {first_seq}.")
        self._remember(pk, Tail(first_seq + len(events) - 1, events[-1] == LOG_END))

    def _write(self, run_id: str, items: list[Item], parts: list[Item], ending: Ending | None) -> bool:
        """Put the records, each only where none is: one put for one record, else transactions (the
        last one with `ending`'s actions). False when the first write was refused for a record taken;
        nothing of the batch is stored then."""
        if len(items) == 1 and ending is None:
            put = {"TableName": self.table.name, "Item": items[0], "ConditionExpression": NEW_RECORD}
            try:
                self.table.call("put_item", **put, ReturnValuesOnConditionCheckFailure="ALL_OLD")
            except ClientError as exc:
                if is_condition_failure(exc) and exc.response.get("Item") == items[0]:
                    return True  # boto3 retried a put that had landed (its response was lost): ours
                self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in parts])
                if is_condition_failure(exc):
                    return False
                raise
            return True
        spare = (1, ENDING_BYTES) if ending is not None else (0, 0)
        chunks = chunk_actions([self.table.put_action(item, NEW_RECORD) for item in items], *spare)
        for number, chunk in enumerate(chunks):
            try:
                if number == len(chunks) - 1 and ending is not None:
                    self._transact_ending(run_id, chunk, ending, guarded=len(chunk))
                else:
                    self.table.transact(chunk)
            except ClientError as exc:
                if number > 0:
                    raise
                self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in parts])
                if "ConditionalCheckFailed" in cancellation_codes(exc)[: len(chunk)]:
                    return False
                raise
        return True

    def _items(self, pk: str, first_seq: int, events: list[str]) -> tuple[list[Item], list[Item]]:
        """The records of a batch (`record_spans`), compressed (in parts if even that is over the item limit)."""
        ttl = self.ttl()
        items: list[Item] = []
        parts: list[Item] = []
        for start, end in record_spans(events):
            key: Item = {"PK": s(pk), "SK": s(keys.record_sk(first_seq + start))}
            raw = zlib.compress("\n".join(events[start:end]).encode())
            body, more = self.table.pack_binary(key, raw, COMPRESSED)
            last = first_seq + end - 1
            closed = {"closed": n(last)} if events[end - 1] == LOG_END else {}
            items.append({**key, "last": n(last), **body, **closed, TTL_ATTRIBUTE: ttl})
            parts += more
        return items, parts

    # reads
    def read(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` events after `after_seq`: one Query when a record starts at `after_seq + 1`, when
        `after_seq` ends a record this process knows of (a tailer's cursor) or lies in the one where its
        last read stopped (a resume in batches), else one more for the record holding `after_seq + 1`."""
        pk = keys.run_pk(tenant_id, run_id)
        start = after_seq + 1
        stopped = self._cursors.get(pk)
        if stopped is not None and stopped[0] <= start <= stopped[1]:
            start = stopped[0]
        query: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": s(pk),
                ":lo": s(keys.record_sk(start)),
                ":hi": s(f"{keys.EVENT_PREFIX}~"),
            },
            "ConsistentRead": True,
            "Limit": math.ceil(1.25 * limit / self.events_per_item) + 1,
        }
        records = self.table.query(**query)
        first = next(records, None)
        if first is not None and first["SK"]["S"].startswith(keys.EVENT_PREFIX):
            return self.legacy.read(tenant_id, run_id, after_seq, limit)
        head: list[Item] = []
        if (first is None or _first_seq(first) > start) and after_seq > 0:
            known = self._known(pk)
            if known is None or known.last != after_seq:
                head = self._holding(pk, after_seq + 1)
        return self._events(pk, chain(head, [first] if first is not None else [], records), after_seq, limit)

    def _holding(self, pk: str, seq: int) -> list[Item]:
        """The record that holds `seq` when it starts before it (none when the log ends before `seq`)."""
        query = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {":pk": s(pk), ":lo": s(keys.record_sk(0)), ":hi": s(keys.record_sk(seq))},
            "ScanIndexForward": False,
            "ConsistentRead": True,
            "Limit": 1,
        }
        item = next(self.table.query(**query), None)
        return [item] if item is not None and int(item["last"]["N"]) >= seq else []

    def _events(self, pk: str, records: Iterator[Item], after_seq: int, limit: int) -> list[tuple[int, str]]:
        now = time.time()
        out: list[tuple[int, str]] = []
        for item in records:
            if float(item[TTL_ATTRIBUTE]["N"]) < now:
                continue
            first = _first_seq(item)
            events = zlib.decompress(self.table.binary_body(item, COMPRESSED)).decode().split("\n")
            for offset, event in enumerate(events):
                if first + offset > after_seq:
                    out.append((first + offset, event))
                    if len(out) >= limit:
                        break
            last = int(item["last"]["N"])
            if out and out[-1][0] == last:
                self._remember(pk, Tail(last, "closed" in item))
            elif len(out) >= limit:
                self._cursors.set(pk, (first, last))
            if len(out) >= limit:
                break
        return out

    def last_seq(self, tenant_id: str, run_id: str) -> int:
        return self._tail(keys.run_pk(tenant_id, run_id)).last


def _first_seq(item: Item) -> int:
    return int(item["SK"]["S"].removeprefix(keys.RECORD_PREFIX))


def _check(run_id: str, tail: Tail, first_seq: int) -> None:
    """Refuse an append at `first_seq` after `tail`: after `[DONE]`, or anywhere but right after its end."""
    if tail.closed:
        raise Conflict(f"Event log of run {run_id} is complete; nothing can be appended.")
    if tail.last != first_seq - 1:
        raise LogMoved(f"Event log of run {run_id} ends at seq_id {tail.last}; cannot append at {first_seq}.")
