"""The first format of the DynamoDB store's run event log, still read and appended to.

Logs begun before records were keyed by their first `seq_id` (`dynamodb_log`)
keep this format to their end: `DynamoDBEventLog` sends a log whose head item
exists here. A log lives in its run's partition: a head item (`LOG`, holding `last_seq`)
and one record per appended batch, keyed by the batch's last `seq_id`
(`EV#<12 digits>`) and holding `first` and the events joined by newlines (a
batch over `RECORD_BYTES` is split into several records by event; an event
over the item limit becomes parts). Keying records by their *last* `seq_id` lets a read start at the
record that holds `after_seq + 1` with a plain key condition.

An append is one `TransactWriteItems`: the head's update conditioned on
`last_seq = first_seq - 1` (absent for the first batch) plus the records, so
two writers never take one number and none leaves a gap. The append that
ends with `[DONE]` marks the head `closed`, and every later append is
refused by the same condition. A batch too large
for one transaction (100 items, ~3.5 MB) goes as consecutive transactions,
each conditioned on the previous one's end: still gapless. The transaction
that writes `[DONE]` also carries the run record's terminal put (`ending`),
so a log is never complete while its run is not (`Store.end_log`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chorus.errors import Conflict, LogMoved
from chorus.store import dynamodb_keys as keys
from chorus.store.base import LOG_END
from chorus.store.dynamodb_keys import TTL_ATTRIBUTE, Item, n, s
from chorus.store.dynamodb_wire import DynamoDBTable, cancellation_codes, chunk_actions, condition

Ending = Callable[[], tuple[list[dict[str, Any]], list[Item]]]
"""Builds the actions (and the part items to write first) that join the transaction closing a
log: the run record's conditional put, computed afresh from the stored run on every attempt."""

ENDING_BYTES = 400_000
"""Room kept in a closing transaction for the run record (a body inline up to 350 KB, plus keys)."""

ENDING_ATTEMPTS = 50

RECORD_BYTES = 64_000
"""Events per log record, in bytes: small next to Query's 1 MB page, so a read of a batch of events
costs one Query even when the first and last records it touches are mostly outside the batch."""


def record_spans(events: list[str]) -> list[tuple[int, int]]:
    """A batch's records, as `(start, end)` slices of `events`: runs up to `RECORD_BYTES`, a larger event alone."""
    spans: list[tuple[int, int]] = []
    start, size = 0, 0
    for i, event in enumerate(events):
        weight = len(event.encode()) + 1
        if i > start and size + weight > RECORD_BYTES:
            spans.append((start, i))
            start, size = i, 0
        size += weight
    return [*spans, (start, len(events))]


class LogItems:
    """What both formats' operations are on: the table, the TTL of a log item, the coalescing size."""

    def __init__(self, table: DynamoDBTable, ttl: Callable[[], dict[str, str]], events_per_item: int) -> None:
        self.table = table
        self.ttl = ttl
        """The TTL attribute value of a log item written now."""
        self.events_per_item = events_per_item
        """The writers' coalescing size. A read of `limit` events asks for `1.25 * limit / events_per_item + 1`
        records: one Query even when some batches came out short (a flush at a step's end, a write in flight)."""

    def _transact_ending(self, run_id: str, chunk: list[dict[str, Any]], ending: Ending, guarded: int) -> None:
        """`chunk` plus `ending`'s actions in one transaction, the latter rebuilt and tried again while
        only they are refused (the run record changed); a refusal among the first `guarded` actions
        of `chunk` (the log's own conditions) is raised."""
        for _ in range(ENDING_ATTEMPTS):
            extra, extra_parts = ending()
            self.table.write_parts(extra_parts)
            try:
                self.table.transact([*chunk, *extra])
                return
            except ClientError as exc:
                self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in extra_parts])
                codes = cancellation_codes(exc)
                if "ConditionalCheckFailed" not in codes[len(chunk) :] or "ConditionalCheckFailed" in codes[:guarded]:
                    raise
        raise Conflict(f"Run {run_id} is updated too often to end.")


class LegacyEventLog(LogItems):
    """The operations on a log with a head item (synchronous; the store runs them on its worker threads)."""

    def _items(self, pk: str, first_seq: int, events: list[str]) -> tuple[list[Item], list[Item]]:
        """Event-log items of a batch (`record_spans`; an event over the item limit in parts)."""
        ttl = self.ttl()
        items: list[Item] = []
        parts: list[Item] = []
        for start, end in record_spans(events):
            key: Item = {"PK": s(pk), "SK": s(keys.event_sk(first_seq + end - 1))}
            body, more = self.table.pack(key, "\n".join(events[start:end]))
            items.append({**key, **body, "first": n(first_seq + start), TTL_ATTRIBUTE: ttl})
            parts += more
        return items, parts

    def append(
        self, tenant_id: str, run_id: str, first_seq: int, events: list[str], ending: Ending | None = None
    ) -> None:
        """Append `events` gaplessly; with `ending`, its actions join the last transaction (the one
        writing `[DONE]`), rebuilt and retried while only they are refused (the run record changed)."""
        pk = keys.run_pk(tenant_id, run_id)
        items, parts = self._items(pk, first_seq, events)
        self.table.write_parts(parts)
        spare = (2, ENDING_BYTES) if ending is not None else (1, 0)
        chunks = chunk_actions([self.table.put_action(item) for item in items], *spare)
        for number, chunk in enumerate(chunks):
            chunk_first = int(chunk[0]["Put"]["Item"]["first"]["N"])
            chunk_last = int(chunk[-1]["Put"]["Item"]["SK"]["S"].removeprefix(keys.EVENT_PREFIX))
            last_chunk = number == len(chunks) - 1
            chunk.insert(
                0, self._head(tenant_id, run_id, chunk_first, chunk_last, last_chunk and events[-1] == LOG_END)
            )
            try:
                if last_chunk and ending is not None:
                    self._transact_ending(run_id, chunk, ending, guarded=1)
                else:
                    self.table.transact(chunk)
            except ClientError as exc:
                if number == 0:
                    self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in parts])
                if number == 0 and cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                    last = self.last_seq(tenant_id, run_id)
                    if last == first_seq - 1:
                        raise Conflict(f"Event log of run {run_id} is complete; nothing can be appended.") from None
                    raise LogMoved(
                        f"Event log of run {run_id} ends at seq_id {last}; cannot append at {first_seq}."
                    ) from None
                raise

    def _head(self, tenant_id: str, run_id: str, first: int, last: int, closes: bool) -> dict[str, Any]:
        """The log head's update in a transaction appending `first..last`: conditioned on the log
        ending at `first - 1` and open, and marking it closed when the batch ends with `[DONE]`."""
        if first == 1:
            guard = condition("attribute_not_exists(last_seq)")
        else:
            guard = condition("last_seq = :prev AND attribute_not_exists(closed)", values={":prev": n(first - 1)})
        values = {**guard.pop("ExpressionAttributeValues", {}), ":last": n(last), ":ttl": self.ttl()}
        head = {
            "TableName": self.table.name,
            "Key": keys.log_key(tenant_id, run_id),
            "UpdateExpression": "SET last_seq = :last, #ttl = :ttl" + (", closed = :last" if closes else ""),
            "ExpressionAttributeNames": {"#ttl": TTL_ATTRIBUTE},
            "ExpressionAttributeValues": values,
            **guard,
        }
        return {"Update": head}

    def read(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` events after `after_seq`: one Query when batches average `0.8 * events_per_item` events."""
        now = time.time()
        query: dict[str, Any] = {
            "KeyConditionExpression": "PK = :pk AND SK BETWEEN :lo AND :hi",
            "ExpressionAttributeValues": {
                ":pk": s(keys.run_pk(tenant_id, run_id)),
                ":lo": s(keys.event_sk(after_seq + 1)),
                ":hi": s(f"{keys.EVENT_PREFIX}~"),
            },
            "ConsistentRead": True,
            "Limit": math.ceil(1.25 * limit / self.events_per_item) + 1,
        }
        out: list[tuple[int, str]] = []
        for item in self.table.query(**query):
            if float(item[TTL_ATTRIBUTE]["N"]) < now:
                continue
            first = int(item["first"]["N"])
            for offset, event in enumerate(self.table.body(item).split("\n")):
                if first + offset > after_seq:
                    out.append((first + offset, event))
                    if len(out) >= limit:
                        return out
        return out

    def last_seq(self, tenant_id: str, run_id: str) -> int:
        head = self.table.get(keys.log_key(tenant_id, run_id), projection=["last_seq"])
        return int(head["last_seq"]["N"]) if head is not None else 0
