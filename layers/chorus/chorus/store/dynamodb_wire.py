"""The wire of the DynamoDB store: one table, bounded retries, bodies of any size.

`DynamoDBTable` wraps an injected boto3 client (synchronous; the store calls
it from worker threads). It owns what every operation needs and none
decides: retrying throttling with bounded exponential backoff and full
jitter (conditional failures are never retried here: they are answers),
paging, batch writes that re-send unprocessed items, and record bodies.

A body (a record's full JSON) lives in the item itself while it fits in
`INLINE_MAX` bytes: zlib-compressed with the preset dictionary of
`dynamodb_preset` in the binary attribute `zd` (the records' field names
given beforehand, so a short body does not spell them out), or as text in
`data` (bodies that do not compress). Items written before hold it
compressed without a dictionary in `z`, or as text in `data`; both still
read. A larger one (images, long tool returns) is
split into binary parts of `PART_SIZE` bytes stored under
`<owner PK>#PART`, `<owner SK>#<token>#<n>`; the item then carries `parts` =
`<token>:<count>`. Parts are written before the item that names them, under
a fresh token, so a reader never sees a half-written body, a lost
compare-and-set never clobbers the stored body's parts, and a body is never
truncated.
"""

from __future__ import annotations

import random
import time
import uuid
import zlib
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from chorus.errors import StorageUnavailable
from chorus.store.dynamodb_keys import Item, s
from chorus.store.dynamodb_preset import PRESET

INLINE_MAX = 350_000
"""Bytes of JSON kept in the item itself; keys, index attributes and the rest fit in the other 50 KB."""
PART_SIZE = 350_000
COMPRESSED = "z"
"""The binary attribute holding a body zlib-compressed without a dictionary (items written before
`PRESET_COMPRESSED`; the event log's items still are)."""
PRESET_COMPRESSED = "zd"
"""The binary attribute holding a body zlib-compressed with `dynamodb_preset.PRESET`."""
TRANSACTION_ITEMS = 100
TRANSACTION_BYTES = 3_500_000
"""Below the 4 MB a `TransactWriteItems` may carry, leaving room for keys and expressions."""

THROTTLING = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "InternalServerError",
        "ServiceUnavailable",
        "TransactionConflictException",
        "TransactionInProgressException",
    }
)
_TRANSIENT_REASONS = frozenset({"TransactionConflict", "ThrottlingError", "ProvisionedThroughputExceeded"})


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def cancellation_codes(exc: ClientError) -> list[str]:
    """Per-action reason codes of a `TransactionCanceledException` (`None` for actions that were fine)."""
    return [str(r.get("Code", "None")) for r in exc.response.get("CancellationReasons", [])]


def is_condition_failure(exc: ClientError) -> bool:
    return error_code(exc) == "ConditionalCheckFailedException"


def _retryable(exc: ClientError) -> bool:
    code = error_code(exc)
    if code in THROTTLING:
        return True
    if code == "TransactionCanceledException":
        reasons = set(cancellation_codes(exc)) - {"None"}
        return bool(reasons) and reasons <= _TRANSIENT_REASONS
    return False


def item_size(item: Item) -> int:
    """An upper bound of an item's size as DynamoDB counts it (names plus values)."""
    size = 0
    for name, value in item.items():
        size += len(name) + 8
        for kind, raw in value.items():
            if kind == "B":
                size += len(raw)
            elif kind in ("S", "N"):
                size += len(str(raw).encode())
            else:
                size += 8
    return size


class DynamoDBTable:
    """A boto3 DynamoDB client bound to one table, with bounded backoff on throttling."""

    def __init__(
        self,
        client: Any,
        name: str,
        *,
        max_attempts: int = 8,
        base_delay_s: float = 0.025,
        max_delay_s: float = 1.0,
    ) -> None:
        self.client = client
        self.name = name
        self.max_attempts = max_attempts
        self.base_delay_s = base_delay_s
        self.max_delay_s = max_delay_s

    def call(self, operation: str, **kwargs: Any) -> dict[str, Any]:
        """One API call; throttling and transaction conflicts are retried up to `max_attempts` times."""
        method = getattr(self.client, operation)
        for attempt in range(self.max_attempts):
            try:
                response: dict[str, Any] = method(**kwargs)
                return response
            except ClientError as exc:
                if not _retryable(exc) or attempt == self.max_attempts - 1:
                    raise
                self.backoff(attempt)
        raise AssertionError("unreachable")

    def backoff(self, attempt: int) -> None:
        time.sleep(random.uniform(0, min(self.max_delay_s, self.base_delay_s * 2**attempt)))

    # single items
    def get(self, key: Item, *, projection: list[str] | None = None, consistent: bool = True) -> Item | None:
        """A strongly consistent read of one item (only the `projection` attributes when given);
        eventually consistent, at half the units, when not `consistent`."""
        kwargs: dict[str, Any] = {"TableName": self.name, "Key": key, "ConsistentRead": consistent}
        if projection is not None:
            kwargs["ProjectionExpression"] = ", ".join(f"#a{i}" for i in range(len(projection)))
            kwargs["ExpressionAttributeNames"] = {f"#a{i}": name for i, name in enumerate(projection)}
        item: Item | None = self.call("get_item", **kwargs).get("Item")
        return item

    def query(self, **kwargs: Any) -> Iterator[Item]:
        """Every item a query matches, page after page."""
        kwargs = {"TableName": self.name, **kwargs}
        while True:
            response = self.call("query", **kwargs)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    # batches
    def batch_write(self, requests: list[dict[str, Any]]) -> None:
        """`PutRequest`/`DeleteRequest`s in batches of 25, re-sending unprocessed ones with backoff."""
        for start in range(0, len(requests), 25):
            pending: list[dict[str, Any]] = requests[start : start + 25]
            attempt = 0
            while pending:
                response = self.call("batch_write_item", RequestItems={self.name: pending})
                pending = response.get("UnprocessedItems", {}).get(self.name, [])
                if pending:
                    if attempt >= self.max_attempts:
                        raise StorageUnavailable(f"Storage error: {len(pending)} writes stayed unprocessed")
                    self.backoff(attempt)
                    attempt += 1

    def batch_get(self, keys: list[Item]) -> list[Item]:
        """The items at `keys` (distinct), in no particular order: strongly consistent `BatchGetItem`s of
        100 keys, re-asking for unprocessed keys with backoff; absent items are simply not returned."""
        out: list[Item] = []
        for start in range(0, len(keys), 100):
            pending: list[Item] = keys[start : start + 100]
            attempt = 0
            while pending:
                request = {self.name: {"Keys": pending, "ConsistentRead": True}}
                response = self.call("batch_get_item", RequestItems=request)
                out.extend(response.get("Responses", {}).get(self.name, []))
                pending = response.get("UnprocessedKeys", {}).get(self.name, {}).get("Keys", [])
                if pending:
                    if attempt >= self.max_attempts:
                        raise StorageUnavailable(f"Storage error: {len(pending)} reads stayed unprocessed")
                    self.backoff(attempt)
                    attempt += 1
        return out

    def delete_keys(self, keys: list[Item]) -> None:
        self.batch_write([{"DeleteRequest": {"Key": key}} for key in keys])

    def transact(self, actions: list[dict[str, Any]]) -> None:
        """One `TransactWriteItems`: all of `actions` or none (at most `TRANSACTION_ITEMS`)."""
        self.call("transact_write_items", TransactItems=actions)

    def put_action(
        self, item: Item, condition: str | None = None, values: Item | None = None, names: dict[str, str] | None = None
    ) -> dict[str, Any]:
        put: dict[str, Any] = {"TableName": self.name, "Item": item}
        if condition is not None:
            put["ConditionExpression"] = condition
            if values:
                put["ExpressionAttributeValues"] = values
            if names:
                put["ExpressionAttributeNames"] = names
        return {"Put": put}

    def check_action(self, key: Item, condition: str, values: Item, names: dict[str, str]) -> dict[str, Any]:
        """A `ConditionCheck`: the transaction goes through only if `condition` holds on `key`'s item."""
        check = {
            "TableName": self.name,
            "Key": key,
            "ConditionExpression": condition,
            "ExpressionAttributeValues": values,
            "ExpressionAttributeNames": names,
        }
        return {"ConditionCheck": check}

    # bodies
    def pack(self, key: Item, data: str) -> tuple[Item, list[Item]]:
        """The attributes holding `data` in the item at `key`, and the part items to write first.

        Inline, the JSON is zlib-compressed with the preset dictionary (`zd`, binary) when that
        is smaller, as record JSON nearly always is: a write costs a unit per KB, once more for
        each index the item is in, and a message or run item is over 1 KB as text."""
        raw = data.encode()
        compressor = zlib.compressobj(zdict=PRESET)
        packed = compressor.compress(raw) + compressor.flush()
        if len(packed) < len(raw) and len(packed) <= INLINE_MAX:
            return {PRESET_COMPRESSED: {"B": packed}}, []
        if len(raw) <= INLINE_MAX:
            return {"data": s(data)}, []
        return self._split(key, raw)

    def pack_binary(self, key: Item, raw: bytes, attribute: str) -> tuple[Item, list[Item]]:
        """`pack` for bytes: kept in the binary `attribute` while they fit, else parts."""
        if len(raw) <= INLINE_MAX:
            return {attribute: {"B": raw}}, []
        return self._split(key, raw)

    @staticmethod
    def _split(key: Item, raw: bytes) -> tuple[Item, list[Item]]:
        token = uuid.uuid4().hex[:12]
        pk, sk = key["PK"]["S"], key["SK"]["S"]
        parts = [
            {"PK": s(f"{pk}#PART"), "SK": s(f"{sk}#{token}#{i:04d}"), "part": {"B": raw[offset : offset + PART_SIZE]}}
            for i, offset in enumerate(range(0, len(raw), PART_SIZE))
        ]
        return {"parts": s(f"{token}:{len(parts)}")}, parts

    def write_parts(self, parts: list[Item]) -> None:
        self.batch_write([{"PutRequest": {"Item": part}} for part in parts])

    def body(self, item: Item) -> str:
        """The JSON an item holds, joining its parts when it was split."""
        if PRESET_COMPRESSED in item:
            decompressor = zlib.decompressobj(zdict=PRESET)
            return (decompressor.decompress(bytes(item[PRESET_COMPRESSED]["B"])) + decompressor.flush()).decode()
        if "data" in item:
            return str(item["data"]["S"])
        if COMPRESSED in item:
            return zlib.decompress(bytes(item[COMPRESSED]["B"])).decode()
        return self._joined(item).decode()

    def binary_body(self, item: Item, attribute: str) -> bytes:
        """The bytes `pack_binary` stored in an item."""
        if attribute in item:
            return bytes(item[attribute]["B"])
        return self._joined(item)

    def _joined(self, item: Item) -> bytes:
        token, _, count = item["parts"]["S"].partition(":")
        chunks = [bytes(p["part"]["B"]) for p in self.query(**self._parts_query(item, token))]
        if len(chunks) != int(count):
            raise StorageUnavailable(f"Storage error: {item['PK']['S']} has {len(chunks)} of {count} parts")
        return b"".join(chunks)

    def drop_parts(self, item: Item | None, keep: Item | None = None) -> None:
        """Delete the parts `item` names, unless `keep` names the same ones (best effort: orphans are inert)."""
        if item is None or "parts" not in item or (keep is not None and keep.get("parts") == item["parts"]):
            return
        token = item["parts"]["S"].partition(":")[0]
        query = {**self._parts_query(item, token), "ProjectionExpression": "PK, SK"}
        self.delete_keys(list(self.query(**query)))

    @staticmethod
    def _parts_query(item: Item, token: str) -> dict[str, Any]:
        return {
            "KeyConditionExpression": "PK = :pk AND begins_with(SK, :prefix)",
            "ExpressionAttributeValues": {
                ":pk": s(f"{item['PK']['S']}#PART"),
                ":prefix": s(f"{item['SK']['S']}#{token}#"),
            },
            "ConsistentRead": True,
        }


def condition(expression: str, names: dict[str, str] | None = None, values: Item | None = None) -> dict[str, Any]:
    """`ConditionExpression` keyword arguments of one API call."""
    out: dict[str, Any] = {"ConditionExpression": expression}
    if names:
        out["ExpressionAttributeNames"] = names
    if values:
        out["ExpressionAttributeValues"] = values
    return out


def chunk_actions(
    actions: list[dict[str, Any]], spare_items: int = 0, spare_bytes: int = 0
) -> list[list[dict[str, Any]]]:
    """Split transaction actions into groups that each fit one `TransactWriteItems` (count and bytes),
    leaving room in each for `spare_items` more actions of `spare_bytes` in all (added by the caller)."""
    chunks: list[list[dict[str, Any]]] = [[]]
    size = 0
    max_items, max_bytes = TRANSACTION_ITEMS - spare_items, TRANSACTION_BYTES - spare_bytes
    for action in actions:
        body = next(iter(action.values()))
        weight = item_size(body.get("Item") or body.get("Key") or {}) + 512
        if chunks[-1] and (len(chunks[-1]) >= max_items or size + weight > max_bytes):
            chunks.append([])
            size = 0
        chunks[-1].append(action)
        size += weight
    return chunks
