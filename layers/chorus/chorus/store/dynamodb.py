"""`DynamoDBStore`: the AWS adapter of the `store` port, on one table.

The key schema is in `dynamodb_keys`, the table definition in
`dynamodb_table`, retries and large bodies in `dynamodb_wire`, listings in
`dynamodb_listing`, the run event log in `dynamodb_log`. Every boto3
call runs on a bounded worker pool, never on the event loop (invariant 5).
Each record is kept as its full pydantic JSON (`data`) beside the key and
index attributes, so a new record field needs no change here.

Every invariant of the port is a conditional write, never a read-then-write:

- `append_events`: one `TransactWriteItems` updates the log head
  (`last_seq = first_seq - 1`, or absent for the first batch) and puts the
  batch; a lost race or a gap is `Conflict` with nothing written.
- `commit_step`: the step item is put with `attribute_not_exists` in the
  same transaction as its messages; a second commit is `AlreadyCommitted`.
- `update_run`: `version = expect_version`; `Conflict` or `NotFound`.
- `claim_group`: a compare-and-set on the holder seen; `put_group_queue`: on the line's
  `version` (`attribute_not_exists` for the first); `remember_idempotency_key`:
  `attribute_not_exists OR expired`, returning the stored record otherwise.

Event-log items, log heads and step records carry a TTL of
`retention_s + log_ttl_slack_s` from their write: the run's own
`expires_at` (set when it ends) is what answers 410, and the slack keeps a
long run's early events until its end; DynamoDB deletes them later.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from chorus.errors import AlreadyCommitted, ChorusError, Conflict, NotFound, StorageUnavailable
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_keys import ORDER_KEY, TTL_ATTRIBUTE, Item, n, s
from chorus.store.dynamodb_listing import list_page
from chorus.store.dynamodb_log import DynamoDBEventLog
from chorus.store.dynamodb_wire import (
    DynamoDBTable,
    cancellation_codes,
    chunk_actions,
    condition,
    error_code,
    is_condition_failure,
)
from chorus.store.records import (
    TERMINAL_STATUSES,
    AgentRecord,
    BlockRecord,
    GroupQueue,
    GroupRecord,
    IdempotencyRecord,
    McpServerRecord,
    MessageRecord,
    Page,
    Record,
    RunRecord,
    StepRecord,
    ToolRecord,
)

T = TypeVar("T")
R = TypeVar("R", bound=Record)

UNFINISHED_STATUSES = frozenset({"created", "running"})


class DynamoDBStore:
    """The `store` port on one DynamoDB table (see `dynamodb_keys` for the schema).

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

    @classmethod
    def from_settings(cls, table_name: str, retention_s: float) -> DynamoDBStore:
        """A store with a default boto3 client (region, credentials and `AWS_ENDPOINT_URL` from the environment)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)
        return cls(boto3.client("dynamodb", config=config), table_name, retention_s=retention_s, max_workers=32)

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

    def _get_sync(self, kind: str, tenant_id: str, record_id: str) -> str:
        item = self.table.get(keys.record_key(kind, tenant_id, record_id))
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

    # tools
    async def put_tool(self, tool: ToolRecord) -> None:
        await self._call(self._put_resource_sync, "Tool", tool, {"name": tool.name})

    async def get_tool(self, tenant_id: str, tool_id: str) -> ToolRecord:
        return ToolRecord.model_validate_json(await self._call(self._get_sync, "Tool", tenant_id, tool_id))

    async def get_tools(self, tenant_id: str, tool_ids: list[str]) -> list[ToolRecord]:
        rows = await self._call(self._get_many_sync, "Tool", tenant_id, tool_ids)
        return [ToolRecord.model_validate_json(r) for r in rows]

    async def list_tools(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[ToolRecord]:
        partition = keys.listing("Tool", tenant_id)
        return await self._list(ToolRecord, "Tool", tenant_id, page, "by_tenant", partition, {"name": name})

    async def delete_tool(self, tenant_id: str, tool_id: str) -> None:
        await self._call(self._delete_sync, "Tool", tenant_id, tool_id)

    # MCP servers
    async def put_mcp_server(self, server: McpServerRecord) -> None:
        await self._call(self._put_resource_sync, "McpServer", server, {"name": server.server_name})

    async def get_mcp_server(self, tenant_id: str, server_id: str) -> McpServerRecord:
        return McpServerRecord.model_validate_json(await self._call(self._get_sync, "McpServer", tenant_id, server_id))

    async def list_mcp_servers(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[McpServerRecord]:
        partition = keys.listing("McpServer", tenant_id)
        return await self._list(McpServerRecord, "McpServer", tenant_id, page, "by_tenant", partition, {"name": name})

    async def delete_mcp_server(self, tenant_id: str, server_id: str) -> None:
        await self._call(self._delete_sync, "McpServer", tenant_id, server_id)

    # memory blocks
    @staticmethod
    def _block_attrs(block: BlockRecord) -> dict[str, Any]:
        return {"label": block.label, "version": block.version}

    async def put_block(self, block: BlockRecord) -> None:
        await self._call(self._put_resource_sync, "Block", block, self._block_attrs(block))

    async def get_block(self, tenant_id: str, block_id: str) -> BlockRecord:
        return BlockRecord.model_validate_json(await self._call(self._get_sync, "Block", tenant_id, block_id))

    async def get_blocks(self, tenant_id: str, block_ids: list[str]) -> list[BlockRecord]:
        rows = await self._call(self._get_many_sync, "Block", tenant_id, block_ids)
        return [BlockRecord.model_validate_json(r) for r in rows]

    async def list_blocks(self, tenant_id: str, page: Page, *, label: str | None = None) -> list[BlockRecord]:
        partition = keys.listing("Block", tenant_id)
        return await self._list(BlockRecord, "Block", tenant_id, page, "by_tenant", partition, {"label": label})

    async def update_block(self, block: BlockRecord, *, expect_version: int) -> BlockRecord:
        stored = block.model_copy(update={"version": expect_version + 1})
        listed = {"G1": keys.listing("Block", block.tenant_id), **self._block_attrs(stored)}
        item = self._record_item("Block", stored, stored.created_at, listed)
        await self._call(self._cas_sync, "Block", stored, item, expect_version)
        return stored

    async def delete_block(self, tenant_id: str, block_id: str) -> None:
        await self._call(self._delete_sync, "Block", tenant_id, block_id)

    # agents
    async def put_agent(self, agent: AgentRecord) -> None:
        await self._call(self._put_resource_sync, "Agent", agent)

    async def get_agent(self, tenant_id: str, agent_id: str) -> AgentRecord:
        return AgentRecord.model_validate_json(await self._call(self._get_sync, "Agent", tenant_id, agent_id))

    async def list_agents(self, tenant_id: str, page: Page) -> list[AgentRecord]:
        return await self._list(AgentRecord, "Agent", tenant_id, page, "by_tenant", keys.listing("Agent", tenant_id))

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        await self._call(self._delete_sync, "Agent", tenant_id, agent_id)

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        unlisted = {"G1": None} if group.solo_agent_id is not None else None  # out of the tenant's listing
        await self._call(self._put_resource_sync, "Group", group, unlisted)

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord:
        return GroupRecord.model_validate_json(await self._call(self._get_sync, "Group", tenant_id, group_id))

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]:
        return await self._list(GroupRecord, "Group", tenant_id, page, "by_tenant", keys.listing("Group", tenant_id))

    async def delete_group(self, tenant_id: str, group_id: str) -> None:
        await self._call(self._delete_sync, "Group", tenant_id, group_id)

    # runs
    def _run_item(self, run: RunRecord) -> tuple[Item, list[Item]]:
        t = run.tenant_id
        attrs: dict[str, Any] = {
            "G1": keys.listing("Run", t),
            "G2": keys.listing("Run", t, group_id=run.group_id) if run.group_id is not None else None,
            "G3": keys.listing("Run", t, agent_id=run.agent_id),
            "UNF": keys.unfinished(run.id) if run.status in UNFINISHED_STATUSES else None,
            "status": run.status,
            "background": run.background,
            "group_id": run.group_id,
            "agent_id": run.agent_id,
            "version": run.version,
        }
        return self._record_item("Run", run, run.created_at, attrs)

    async def put_run(self, run: RunRecord) -> None:
        await self._call(self._put_sync, *self._run_item(run))

    async def get_run(self, tenant_id: str, run_id: str) -> RunRecord:
        return RunRecord.model_validate_json(await self._call(self._get_sync, "Run", tenant_id, run_id))

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
            filters["agent_id"] = agent_id
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
            pk = keys.run_pk(tenant_id, run_id)
            for partition in (pk, f"{pk}#PART"):
                query = {
                    "KeyConditionExpression": "PK = :pk",
                    "ExpressionAttributeValues": {":pk": s(partition)},
                    "ProjectionExpression": "PK, SK",
                }
                self.table.delete_keys(list(self.table.query(**query)))

        await self._call(delete)

    async def claim_group(self, tenant_id: str, group_id: str, run_id: str) -> str | None:
        def claim() -> str | None:
            key = keys.claim_key(tenant_id, group_id)
            for _ in range(self.table.max_attempts * 4):
                seen = self.table.get(key)
                holder = str(seen["run_id"]["S"]) if seen is not None else None
                if holder is not None and holder != run_id:
                    held = self.table.get(keys.record_key("Run", tenant_id, holder), projection=["status"])
                    if held is not None and held["status"]["S"] not in TERMINAL_STATUSES:
                        return holder
                if holder is None:
                    guard = condition("attribute_not_exists(PK)")
                else:
                    guard = condition("run_id = :seen", values={":seen": s(holder)})
                try:
                    self.table.call("put_item", TableName=self.table.name, Item={**key, "run_id": s(run_id)}, **guard)
                    return None
                except ClientError as exc:
                    if not is_condition_failure(exc):
                        raise
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
                try:
                    self.table.call(
                        "put_item",
                        TableName=self.table.name,
                        Item=item,
                        ReturnValuesOnConditionCheckFailure="ALL_OLD",
                        **guard,
                    )
                    return data
                except ClientError as exc:
                    if not is_condition_failure(exc):
                        raise
                    stored = exc.response.get("Item") or self.table.get(key)
                    if stored is not None:
                        return str(stored["data"]["S"])
            raise Conflict(f"Idempotency key {record.key} is contended; retry.")

        return IdempotencyRecord.model_validate_json(await self._call(remember))

    async def forget_idempotency_key(self, tenant_id: str, key: str, run_id: str) -> None:
        await self._call(self._delete_if, keys.idempotency_key(tenant_id, key), run_id)

    # history
    def _message_item(self, m: MessageRecord) -> tuple[Item, list[Item]]:
        t = m.tenant_id
        attrs: dict[str, Any] = {
            "G1": keys.listing("Message", t),
            "G2": keys.listing("Message", t, group_id=m.group_id) if m.group_id is not None else None,
            "G3": keys.listing("Message", t, agent_id=m.agent_id) if m.agent_id is not None else None,
            "G4": keys.run_messages(t, m.run_id),
            "group_id": m.group_id,
            "agent_id": m.agent_id,
            "run_id": m.run_id,
        }
        return self._record_item("Message", m, m.position, attrs)

    async def commit_step(self, step: StepRecord, messages: list[MessageRecord]) -> None:
        await self._call(self._commit_sync, step, messages)

    def _commit_sync(self, step: StepRecord, messages: list[MessageRecord]) -> None:
        key = keys.step_key(step.tenant_id, step.run_id, step.step_key)
        body, parts = self.table.pack(key, step.model_dump_json())
        actions = [self.table.put_action({**key, **body, TTL_ATTRIBUTE: self._log_ttl()}, "attribute_not_exists(PK)")]
        for message in messages:
            item, message_parts = self._message_item(message)
            parts += message_parts
            actions.append(self.table.put_action(item))
        self.table.write_parts(parts)
        first, *rest = chunk_actions(actions)
        try:
            self.table.transact(first)
        except ClientError as exc:
            self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in parts])
            if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
                raise AlreadyCommitted(f"Step {step.step_key} of run {step.run_id} is already committed.") from None
            raise
        for chunk in rest:
            self.table.transact(chunk)

    async def list_steps(self, tenant_id: str, run_id: str) -> list[StepRecord]:
        def read() -> list[str]:
            query = {
                "KeyConditionExpression": "PK = :pk AND begins_with(SK, :step)",
                "ExpressionAttributeValues": {":pk": s(keys.run_pk(tenant_id, run_id)), ":step": s(keys.STEP_PREFIX)},
                "ConsistentRead": True,
            }
            return [self.table.body(item) for item in self.table.query(**query)]

        return [StepRecord.model_validate_json(r) for r in await self._call(read)]

    async def list_messages(
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[MessageRecord]:
        rows = await self._message_rows(tenant_id, page, group_id, agent_id, run_id)
        return [MessageRecord.model_validate_json(r) for r in rows]

    async def history_page(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        return [orjson.loads(r) for r in await self._message_rows(tenant_id, page, group_id, None, run_id)]

    async def _message_rows(
        self, tenant_id: str, page: Page, group_id: str | None, agent_id: str | None, run_id: str | None
    ) -> list[str]:
        """The stored JSON of a page of messages, from the index the scope names."""
        filters: dict[str, Any] = {"group_id": group_id, "agent_id": agent_id}
        if run_id is not None:
            index, partition = "by_run", keys.run_messages(tenant_id, run_id)
        elif group_id is not None:
            index, partition = "by_group", keys.listing("Message", tenant_id, group_id=group_id)
            filters["group_id"] = None
        elif agent_id is not None:
            index, partition = "by_agent", keys.listing("Message", tenant_id, agent_id=agent_id)
            filters["agent_id"] = None
        else:
            index, partition = "by_tenant", keys.listing("Message", tenant_id)
        rows: list[str] = await self._call(list_page, self.table, "Message", tenant_id, page, index, partition, filters)
        return rows

    async def delete_group_messages(self, tenant_id: str, group_id: str) -> int:
        partition = keys.listing("Message", tenant_id, group_id=group_id)
        return await self._call(self._delete_messages_sync, "by_group", partition)

    async def delete_run_messages(self, tenant_id: str, run_id: str) -> int:
        return await self._call(self._delete_messages_sync, "by_run", keys.run_messages(tenant_id, run_id))

    def _delete_messages_sync(self, index: str, partition: str) -> int:
        """Delete the messages listed in one partition of `index` (with their parts); returns how many."""
        query = {
            "IndexName": index,
            "KeyConditionExpression": f"{keys.INDEXES[index]} = :p",
            "ExpressionAttributeValues": {":p": s(partition)},
            "ProjectionExpression": "PK, SK, parts",
        }
        items = list(self.table.query(**query))
        self.table.delete_keys([{"PK": i["PK"], "SK": i["SK"]} for i in items])
        for item in items:
            self.table.drop_parts(item)
        return len(items)

    # the run event log
    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        if events:
            await self._call(self.log.append, tenant_id, run_id, first_seq, events)

    async def end_log(
        self,
        tenant_id: str,
        run_id: str,
        first_seq: int,
        events: list[str],
        end: Callable[[RunRecord], RunRecord],
    ) -> RunRecord:
        return await self._call(self._end_sync, tenant_id, run_id, first_seq, events, end)

    def _end_sync(
        self, tenant_id: str, run_id: str, first_seq: int, events: list[str], end: Callable[[RunRecord], RunRecord]
    ) -> RunRecord:
        key = keys.record_key("Run", tenant_id, run_id)
        attempt: dict[str, Any] = {}

        def ending() -> tuple[list[dict[str, Any]], list[Item]]:
            old = self.table.get(key)
            if old is None:
                raise NotFound(f"Run not found: {run_id}")
            run = RunRecord.model_validate_json(self.table.body(old))
            ended = end(run)
            if ended is run:
                attempt.update(run=run, old=None, item=None)
                return [], []
            stored = ended.model_copy(update={"version": run.version + 1})
            item, parts = self._run_item(stored)
            attempt.update(run=stored, old=old, item=item)
            guard = {":v": n(run.version)}
            return [self.table.put_action(item, "#v = :v", guard, {"#v": "version"})], parts

        self.log.append(tenant_id, run_id, first_seq, events, ending=ending)
        self.table.drop_parts(attempt["old"], keep=attempt["item"])
        stored: RunRecord = attempt["run"]
        return stored

    async def read_events(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        return await self._call(self.log.read, tenant_id, run_id, after_seq, limit)

    async def last_seq(self, tenant_id: str, run_id: str) -> int:
        return await self._call(self.log.last_seq, tenant_id, run_id)


def _take(items: Iterator[Item], limit: int) -> Iterator[Item]:
    for count, item in enumerate(items):
        if count >= limit:
            return
        yield item
