"""The runs of `DynamoDBStore` and what coordinates them.

Run records (listed by tenant, group and agent, and by the sharded `unfinished`
index while they are created or running), the claim of a direct run's first attempt, the claim that keeps one active run
per group, the tenant's run slots, a group's line of waiting runs and
idempotency keys. Each is a conditional write on what was seen, retried a
bounded number of times, never a read-then-write.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from chorus.errors import Conflict, NotFound
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.dynamodb_keys import ORDER_KEY, TTL_ATTRIBUTE, Item, n, s
from chorus.store.dynamodb_wire import condition, is_condition_failure
from chorus.store.records import TERMINAL_STATUSES, GroupQueue, IdempotencyRecord, Page, RunRecord


class DynamoDBRuns(DynamoDBCore):
    """The run, claim, slot, group-line and idempotency methods of the `store` port."""

    async def put_run(self, run: RunRecord) -> None:
        await self._call(self._put_sync, *self._run_item(run))

    async def get_run(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> RunRecord:
        return RunRecord.model_validate_json(await self._call(self._get_sync, "Run", tenant_id, run_id, consistent))

    async def run_version(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> int:
        def read() -> int:
            key = keys.record_key("Run", tenant_id, run_id)
            item = self.table.get(key, projection=["version"], consistent=consistent)
            if item is None:
                raise NotFound(f"Run not found: {run_id}")
            return int(item["version"]["N"])

        return await self._call(read)

    async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
        stored = run.model_copy(update={"version": expect_version + 1})
        await self._call(self._cas_sync, "Run", stored, self._run_item(stored), expect_version)
        return stored

    async def list_runs(
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        statuses: list[str] | None = None,
        background: bool | None = None,
    ) -> list[RunRecord]:
        filters: dict[str, Any] = {"status": statuses, "background": background}
        if group_id is not None:
            index, partition = "by_group", keys.listing("Run", tenant_id, group_id=group_id)
            filters["G3"] = keys.listing("Run", tenant_id, agent_id=agent_id) if agent_id is not None else None
        elif agent_id is not None:
            index, partition = "by_agent", keys.listing("Run", tenant_id, agent_id=agent_id)
        else:
            index, partition = "by_tenant", keys.listing("Run", tenant_id)
        return await self._list(RunRecord, "Run", tenant_id, page, index, partition, filters)

    async def list_unfinished_runs(self, limit: int) -> list[RunRecord]:
        def read() -> list[str]:
            oldest: list[Item] = []
            for shard in range(keys.UNFINISHED_SHARDS):
                query = {
                    "IndexName": "unfinished",
                    "KeyConditionExpression": "UNF = :u",
                    "ExpressionAttributeValues": {":u": s(keys.unfinished_shard(shard))},
                    "Limit": limit,
                }
                oldest += _take(self.table.query(**query), limit)
            oldest.sort(key=lambda item: item[ORDER_KEY]["S"])
            return [self.table.body(item) for item in oldest[:limit]]

        return [RunRecord.model_validate_json(r) for r in await self._call(read)]

    async def delete_run(self, tenant_id: str, run_id: str) -> None:
        def delete() -> None:
            self._delete_sync("Run", tenant_id, run_id)
            self.log.forget(tenant_id, run_id)
            pk = keys.run_pk(tenant_id, run_id)
            for partition in (pk, f"{pk}#PART"):
                query = {
                    "KeyConditionExpression": "PK = :pk",
                    "ExpressionAttributeValues": {":pk": s(partition)},
                    "ProjectionExpression": "PK, SK",
                }
                self.table.delete_keys(list(self.table.query(**query)))

        await self._call(delete)

    async def claim_first_attempt(self, tenant_id: str, run_id: str, attempt_id: str) -> bool:
        def claim() -> bool:
            item = {**keys.attempt_key(tenant_id, run_id), "attempt": s(attempt_id), TTL_ATTRIBUTE: self._log_ttl()}
            stored = self._put_guarded(item, condition("attribute_not_exists(PK)"))
            # a retried put whose first try landed finds its own claim
            return stored is None or stored.get("attempt") == s(attempt_id)

        return await self._call(claim)

    def _put_guarded(self, item: Item, guard: dict[str, Any]) -> Item | None:
        """Put `item` if `guard` holds: None if it did, else the item that failed the guard as
        it stands now (empty if it went meanwhile)."""
        try:
            self.table.call(
                "put_item", TableName=self.table.name, Item=item, ReturnValuesOnConditionCheckFailure="ALL_OLD", **guard
            )
            return None
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise
            stored: Item | None = exc.response.get("Item") or self.table.get({"PK": item["PK"], "SK": item["SK"]})
            return stored or {}

    async def claim_group(self, tenant_id: str, group_id: str, run_id: str) -> str | None:
        """Put the claim as if the group were free (it is, between runs) and read the holder only
        from a refused put's answer (`ALL_OLD`): a free group's claim is one write and no read."""

        def claim() -> str | None:
            key = keys.claim_key(tenant_id, group_id)
            guard = condition("attribute_not_exists(PK)")
            for _ in range(self.table.max_attempts * 4):
                seen = self._put_guarded({**key, "run_id": s(run_id)}, guard)
                if seen is None:
                    return None
                holder = str(seen["run_id"]["S"]) if seen else None
                if holder == run_id:  # this run's own claim (a retried put whose answer was lost)
                    return None
                if holder is not None:
                    held = self.table.get(keys.record_key("Run", tenant_id, holder), projection=["status"])
                    if held is not None and held["status"]["S"] not in TERMINAL_STATUSES:
                        return holder
                    guard = condition("run_id = :seen", values={":seen": s(holder)})
                else:
                    guard = condition("attribute_not_exists(PK)")
            raise Conflict(f"Group {group_id} is being claimed by other runs; retry.")

        return await self._call(claim)

    async def release_group(self, tenant_id: str, group_id: str, run_id: str) -> None:
        await self._call(self._delete_if, keys.claim_key(tenant_id, group_id), run_id)

    async def claim_run_slot(self, tenant_id: str, run_id: str, limit: int) -> bool:
        def claim() -> bool:
            for _ in range(self.table.max_attempts * 4):
                query = {
                    "KeyConditionExpression": "PK = :pk",
                    "ExpressionAttributeValues": {":pk": s(keys.run_slots_pk(tenant_id))},
                    "ConsistentRead": True,
                }
                held = {str(item["SK"]["S"]): str(item["run_id"]["S"]) for item in self.table.query(**query)}
                if run_id in held.values():
                    return True
                free = self._free_run_slot(tenant_id, held, limit)
                if free is None:
                    return False
                slot, seen = free
                guard = (
                    condition("attribute_not_exists(PK)")
                    if seen is None
                    else condition("run_id = :seen", values={":seen": s(seen)})
                )
                item = {**keys.run_slot_key(tenant_id, slot), "run_id": s(run_id)}
                try:
                    self.table.call("put_item", TableName=self.table.name, Item=item, **guard)
                    return True
                except ClientError as exc:
                    if not is_condition_failure(exc):
                        raise
            raise Conflict("Too many runs are starting at once; retry.")

        return await self._call(claim)

    def _free_run_slot(self, tenant_id: str, held: dict[str, str], limit: int) -> tuple[int, str | None] | None:
        """The first slot below `limit` that is empty or whose run is terminal or gone, with its holder."""
        for slot in range(limit):
            holder = held.get(str(keys.run_slot_key(tenant_id, slot)["SK"]["S"]))
            if holder is None:
                return slot, None
            run = self.table.get(keys.record_key("Run", tenant_id, holder), projection=["status"])
            if run is None or run["status"]["S"] in TERMINAL_STATUSES:
                return slot, holder
        return None

    def _delete_if(self, key: Item, run_id: str) -> None:
        """Delete `key` if it still points at `run_id`."""
        try:
            self.table.call(
                "delete_item",
                TableName=self.table.name,
                Key=key,
                **condition("run_id = :r", values={":r": s(run_id)}),
            )
        except ClientError as exc:
            if not is_condition_failure(exc):
                raise

    async def get_group_queue(self, tenant_id: str, group_id: str) -> GroupQueue:
        item = await self._call(self.table.get, keys.queue_key(tenant_id, group_id))
        if item is None:
            return GroupQueue(tenant_id=tenant_id, group_id=group_id)
        return GroupQueue.model_validate_json(item["data"]["S"])

    async def put_group_queue(self, queue: GroupQueue, *, expect_version: int) -> GroupQueue:
        stored = queue.model_copy(update={"version": expect_version + 1})

        def write() -> None:
            item = {
                **keys.queue_key(queue.tenant_id, queue.group_id),
                "data": s(stored.model_dump_json()),
                "version": n(stored.version),
            }
            if expect_version == 0:
                guard = condition("attribute_not_exists(PK)")
            else:
                guard = condition("#v = :v", {"#v": "version"}, {":v": n(expect_version)})
            try:
                self._put_sync(item, [], guard)  # a retried put whose first attempt landed is a success there
            except ClientError as exc:
                if not is_condition_failure(exc):
                    raise
                raise Conflict(
                    f"The line of group {queue.group_id} changed; expected version {expect_version}."
                ) from None

        await self._call(write)
        return stored

    async def remember_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        def remember() -> str:
            key = keys.idempotency_key(record.tenant_id, record.key)
            data = record.model_dump_json()
            item = {
                **key,
                "data": s(data),
                "run_id": s(record.run_id),
                "valid_until": n(record.expires_at),
                TTL_ATTRIBUTE: n(math.ceil(record.expires_at)),
            }
            for _ in range(self.table.max_attempts * 4):
                guard = condition("attribute_not_exists(PK) OR valid_until <= :now", values={":now": n(time.time())})
                stored = self._put_guarded(item, guard)
                if stored is None:
                    return data
                if stored:
                    return str(stored["data"]["S"])
            raise Conflict(f"Idempotency key {record.key} is contended; retry.")

        return IdempotencyRecord.model_validate_json(await self._call(remember))

    async def forget_idempotency_key(self, tenant_id: str, key: str, run_id: str) -> None:
        await self._call(self._delete_if, keys.idempotency_key(tenant_id, key), run_id)


def _take(items: Iterator[Item], limit: int) -> Iterator[Item]:
    for count, item in enumerate(items):
        if count >= limit:
            return
        yield item
