"""The plumbing of `DynamoDBStore`: its worker pool and the generic record reads and writes.

`DynamoDBCore` owns the table, the event log's collaborator and the bounded
pool every boto3 call runs on (invariant 5), and the kind-generic helpers (an
item from a record, guarded puts, gets, deletes, listings, compare-and-set on
`version`, the run's item) that the resource, run, history and event-log parts
of the store build on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chorus.errors import ChorusError, Conflict, NotFound, StorageUnavailable
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_keys import ORDER_KEY, Item, n, s
from chorus.store.dynamodb_listing import list_page
from chorus.store.dynamodb_log import DynamoDBEventLog
from chorus.store.dynamodb_wire import DynamoDBTable, condition, error_code, is_condition_failure
from chorus.store.records import Page, Record, RunRecord

T = TypeVar("T")
R = TypeVar("R", bound=Record)

UNFINISHED_STATUSES = frozenset({"created", "running"})


class DynamoDBCore:
    """The table, the pool and the generic record helpers shared by every part of `DynamoDBStore`.

    Args:
        client: a boto3 DynamoDB client (thread-safe; built once per process).
        table_name: the table, created by the SAM template or `create_table`.
        retention_s: how long a finished run's log must stay readable.
        log_ttl_slack_s: added to the TTL of log items so a long run keeps its early events.
        max_workers: threads calling DynamoDB at once.
        events_per_item: the writers' coalescing size, to size `read_events` queries.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        *,
        retention_s: float = 10_800,
        log_ttl_slack_s: float = 7 * 86_400,
        max_workers: int = 16,
        events_per_item: int = 64,
    ) -> None:
        self.table = DynamoDBTable(client, table_name)
        self.retention_s = retention_s
        self.log_ttl_slack_s = log_ttl_slack_s
        self.max_workers = max_workers
        self.events_per_item = events_per_item
        self.log = DynamoDBEventLog(self.table, self._log_ttl, events_per_item)
        self._executor: ThreadPoolExecutor | None = None

    # plumbing
    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise RuntimeError("DynamoDBStore is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except ChorusError:
            raise
        except ClientError as exc:
            raise StorageUnavailable(f"Storage error: {error_code(exc)}: {exc}") from exc
        except BotoCoreError as exc:
            raise StorageUnavailable(f"Storage error: {exc}") from exc

    async def open(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="chorus-dynamodb")

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _log_ttl(self) -> dict[str, str]:
        return n(int(time.time() + self.retention_s + self.log_ttl_slack_s))

    # generic records
    def _record_item(self, kind: str, record: Record, order: str, attrs: dict[str, Any]) -> tuple[Item, list[Item]]:
        key = keys.record_key(kind, record.tenant_id, record.id)
        body, parts = self.table.pack(key, record.model_dump_json())
        item: Item = {**key, **body, ORDER_KEY: s(keys.order_key(order, record.id))}
        for name, value in attrs.items():
            if isinstance(value, bool):
                item[name] = {"BOOL": value}
            elif isinstance(value, int):
                item[name] = n(value)
            elif value is not None:
                item[name] = s(value)
        return item, parts

    def _put_sync(self, item: Item, parts: list[Item], guard: dict[str, Any] | None = None) -> None:
        """Put one item (its parts first) if `guard` (condition arguments) holds; raises its `ClientError`.

        A refused put whose stored item is exactly `item` was ours: boto3 retried a put that had
        landed (its response was lost) and the retry failed its own condition. That is success.
        """
        self.table.write_parts(parts)
        kwargs: dict[str, Any] = {"TableName": self.table.name, "Item": item, "ReturnValues": "ALL_OLD"}
        if guard is not None:
            kwargs.update(guard, ReturnValuesOnConditionCheckFailure="ALL_OLD")
        try:
            old = self.table.call("put_item", **kwargs).get("Attributes")
        except ClientError as exc:
            if is_condition_failure(exc) and exc.response.get("Item") == item:
                return
            self.table.drop_parts(item)
            raise
        self.table.drop_parts(old, keep=item)

    def _get_sync(self, kind: str, tenant_id: str, record_id: str, consistent: bool = True) -> str:
        item = self.table.get(keys.record_key(kind, tenant_id, record_id), consistent=consistent)
        if item is None:
            raise NotFound(f"{kind} not found: {record_id}")
        return self.table.body(item)

    def _get_many_sync(self, kind: str, tenant_id: str, record_ids: list[str]) -> list[str]:
        """The bodies of the records among `record_ids`, in that order (`BatchGetItem`, 100 keys a request)."""
        wanted = list(dict.fromkeys(record_ids))
        items = self.table.batch_get([keys.record_key(kind, tenant_id, i) for i in wanted])
        by_pk = {item["PK"]["S"]: item for item in items}
        found = [by_pk.get(keys.record_key(kind, tenant_id, i)["PK"]["S"]) for i in wanted]
        return [self.table.body(item) for item in found if item is not None]

    def _delete_sync(self, kind: str, tenant_id: str, record_id: str) -> None:
        try:
            response = self.table.call(
                "delete_item",
                TableName=self.table.name,
                Key=keys.record_key(kind, tenant_id, record_id),
                ConditionExpression="attribute_exists(PK)",
                ReturnValues="ALL_OLD",
            )
        except ClientError as exc:
            if is_condition_failure(exc):
                raise NotFound(f"{kind} not found: {record_id}") from None
            raise
        self.table.drop_parts(response.get("Attributes"))

    async def _list(
        self,
        model: type[R],
        kind: str,
        tenant_id: str,
        page: Page,
        index: str,
        partition: str,
        filters: dict[str, Any] | None = None,
    ) -> list[R]:
        rows = await self._call(list_page, self.table, kind, tenant_id, page, index, partition, filters or {})
        return [model.model_validate_json(r) for r in rows]

    def _put_resource_sync(self, kind: str, record: Record, attrs: dict[str, Any] | None = None) -> None:
        """An agent, group, block or tool: listed by tenant only (`attrs` may be filtered on)."""
        listed = {"G1": keys.listing(kind, record.tenant_id), **(attrs or {})}
        self._put_sync(*self._record_item(kind, record, record.created_at, listed))

    def _cas_sync(self, kind: str, record: Record, item: tuple[Item, list[Item]], expect_version: int) -> None:
        """Put `item` if the stored `version` is `expect_version`: `Conflict`, or `NotFound` if absent."""
        try:
            self._put_sync(*item, condition("#v = :v", {"#v": "version"}, {":v": n(expect_version)}))
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            current = exc.response.get("Item") or self.table.get(
                keys.record_key(kind, record.tenant_id, record.id), projection=["version"]
            )
            if current is None:
                raise NotFound(f"{kind} not found: {record.id}") from None
            version = current["version"]["N"]
            raise Conflict(f"{kind} {record.id} changed (version {version}, expected {expect_version}).") from None

    # runs
    def _run_item(self, run: RunRecord) -> tuple[Item, list[Item]]:
        """The run's item, written by the run methods and by `end_log`.

        Besides its keys and body it holds only what a condition or a filter reads (`status`,
        `background`, `version`): its group and agent are in `G2`/`G3` (a filter on the agent
        within a group compares `G3`). Each byte counts: past 1 KB every write of it costs twice,
        in the table and in each of its indexes. Items written before also hold `group_id` and
        `agent_id`, which nothing reads."""
        t = run.tenant_id
        attrs: dict[str, Any] = {
            "G1": keys.listing("Run", t),
            "G2": keys.listing("Run", t, group_id=run.group_id) if run.group_id is not None else None,
            "G3": keys.listing("Run", t, agent_id=run.agent_id),
            "UNF": keys.unfinished(run.id) if run.status in UNFINISHED_STATUSES else None,
            "status": run.status,
            "background": run.background,
            "version": run.version,
        }
        return self._record_item("Run", run, run.created_at, attrs)
