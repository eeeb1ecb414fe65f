"""The message history of `DynamoDBStore`: committed steps and their messages.

A step item is put with `attribute_not_exists` in the same transaction as its
messages, so a second commit is `AlreadyCommitted` with nothing written. The
transaction (each, for a step beyond one) also checks the run item's `status`
is not terminal, so a worker still running after its run ended gets `RunEnded`
and writes nothing.

A message of a group is in its group's listing (`G2`) only: each index an item
is in costs its every write again, and the group's partition already holds the
run's messages, since a message's `position` is its commit time followed by its
run id. So a run's messages are read from its group's partition, from a little
before the run was created (`RUN_WINDOW_SKEW_NS`) to a little after it ended (its
commits are fenced by its status, so none is later; a run still going reads to the
partition's end), keeping the rows whose position names the run: runs of one group may interleave (a queued run is
created while another runs). A message without a group (a sleeptime agent's
run) is listed by its run (`G4`). Messages written before carry `G4` beside
`G2` (and `G1`/`G3`, by tenant and by agent): they are found through their
group as any other, so nothing is migrated; the other entries are never
queried, and go when their items are deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from botocore.exceptions import ClientError

from chorus.errors import AlreadyCommitted, RunEnded
from chorus.store import dynamodb_keys as keys
from chorus.store.base import history_scope
from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.dynamodb_keys import ORDER_KEY, TTL_ATTRIBUTE, Item, s
from chorus.store.dynamodb_listing import list_page, partition_range
from chorus.store.dynamodb_wire import cancellation_codes, chunk_actions
from chorus.store.records import TERMINAL_STATUSES, MessageRecord, Page, RunRecord, StepRecord

FENCE_BYTES = 1_024
"""Room left in each commit transaction for its run check (a key and a short expression)."""

RUN_WINDOW_SKEW_NS: Final = 60 * 1_000_000_000
"""How long before its run's `created_at` a run's first message may be stamped, and how long after its
`completed_at` its last: those are the clocks of the processes that created and ended the run, a
message's position that of the worker that committed it, and the clocks may disagree by this much. A
message stamped further out would be missing from its run's listing (never from its group's)."""


@dataclass(frozen=True)
class HistoryScope:
    """Where the messages of one history are: a partition of an index, between `floor` and `ceiling`
    (`OSK` bounds, inclusive) when given, keeping only the rows of `run_id` when the partition is its group's."""

    index: str
    partition: str
    floor: str | None = None
    run_id: str | None = None
    ceiling: str | None = None

    def keeps(self, item: Item) -> bool:
        """Whether an index row belongs to this history (its `OSK` is `<ns>:<run id>:<step>:<index>#<id>`)."""
        return self.run_id is None or item[ORDER_KEY]["S"].split(":", 2)[1:2] == [self.run_id]


def _stamp_ns(iso: str) -> int:
    stamp = datetime.fromisoformat(iso)
    if stamp.tzinfo is None:  # records stamp UTC (`chorus.clock`); a naive stamp is read as such
        stamp = stamp.replace(tzinfo=UTC)
    return int(stamp.timestamp() * 1_000_000_000)


def window_floor(created_at: str) -> str:
    """The lowest position a message of a run created at `created_at` can have (`RUN_WINDOW_SKEW_NS`)."""
    return f"{max(_stamp_ns(created_at) - RUN_WINDOW_SKEW_NS, 0):020d}"


def window_ceiling(completed_at: str) -> str:
    """Above every position a message of a run that ended at `completed_at` can have: positions
    are `<ns>:<run>:…`, so any stamped at or before the bound's ns sorts below `<ns + 1>`."""
    return f"{_stamp_ns(completed_at) + RUN_WINDOW_SKEW_NS + 1:020d}"


class DynamoDBHistory(DynamoDBCore):
    """The step and message methods of the `store` port."""

    def _message_item(self, m: MessageRecord) -> tuple[Item, list[Item]]:
        """The item of a message: in its group's listing (`G2`), or its run's (`G4`) when it has no group.

        Its ids are in its body and in those keys; no query filters on them, so they are no
        attributes of their own (items written before carry `G1`, `G3`, `G4` beside `G2`,
        `group_id`, `agent_id` and `run_id` too, which nothing reads)."""
        t = m.tenant_id
        attrs: dict[str, Any] = (
            {"G2": keys.listing("Message", t, group_id=m.group_id)}
            if m.group_id is not None
            else {"G4": keys.run_messages(t, m.run_id)}
        )
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
        # every transaction of the step checks the run is live, so a run ended between two of them
        # (and its messages deleted by a rollback) gets none of the later ones
        fence = self._live_run_check(step.tenant_id, step.run_id)
        first, *rest = ([fence, *chunk] for chunk in chunk_actions(actions, spare_items=1, spare_bytes=FENCE_BYTES))
        try:
            self.table.transact(first)
        except ClientError as exc:
            self.table.delete_keys([{"PK": p["PK"], "SK": p["SK"]} for p in parts])
            self._raise_if_ended(exc, step)
            if cancellation_codes(exc)[1:2] == ["ConditionalCheckFailed"]:
                raise AlreadyCommitted(f"Step {step.step_key} of run {step.run_id} is already committed.") from None
            raise
        for chunk in rest:
            try:
                self.table.transact(chunk)
            except ClientError as exc:
                self._raise_if_ended(exc, step)
                raise

    @staticmethod
    def _raise_if_ended(exc: ClientError, step: StepRecord) -> None:
        """`RunEnded` if the transaction was refused by its run check (its first action)."""
        if cancellation_codes(exc)[:1] == ["ConditionalCheckFailed"]:
            raise RunEnded(f"Run {step.run_id} has ended; step {step.step_key} is not committed.") from None

    def _live_run_check(self, tenant_id: str, run_id: str) -> dict[str, Any]:
        """The fence of a commit: the run item is absent or its `status` is not terminal."""
        ended = sorted(TERMINAL_STATUSES)
        marks = {f":ended{i}": s(status) for i, status in enumerate(ended)}
        return self.table.check_action(
            keys.record_key("Run", tenant_id, run_id),
            f"attribute_not_exists(PK) OR NOT (#status IN ({', '.join(marks)}))",
            marks,
            {"#status": "status"},
        )

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
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[MessageRecord]:
        rows = await self._message_rows(tenant_id, page, group_id, run_id)
        return [MessageRecord.model_validate_json(r) for r in rows]

    async def history_page(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        return [orjson.loads(r) for r in await self._message_rows(tenant_id, page, group_id, run_id)]

    async def _message_rows(self, tenant_id: str, page: Page, group_id: str | None, run_id: str | None) -> list[str]:
        """The stored JSON of a page of one group's or one run's messages, from that history's scope."""
        field, value = history_scope(group_id, run_id)
        rows: list[str] = await self._call(self._message_rows_sync, tenant_id, page, field, value)
        return rows

    def _message_rows_sync(self, tenant_id: str, page: Page, field: str, value: str) -> list[str]:
        if field == "run_id":
            scope = self._run_scope(tenant_id, value)
        else:
            scope = HistoryScope("by_group", keys.listing("Message", tenant_id, group_id=value))
        return list_page(
            self.table,
            "Message",
            tenant_id,
            page,
            scope.index,
            scope.partition,
            {},
            floor=scope.floor,
            ceiling=scope.ceiling,
            keep=scope.keeps,
        )

    def _run_scope(self, tenant_id: str, run_id: str) -> HistoryScope:
        """Where a run's messages are: its group's partition within its window, else its own (`G4`).

        An unknown run reads its own partition, as before: empty, or the messages of a deleted run
        written when every message was in `G4`."""
        # read consistently: a run created a moment ago missed by a stale read would be looked for in
        # its own partition, and a rollback of it would delete nothing
        item = self.table.get(keys.record_key("Run", tenant_id, run_id))
        run = RunRecord.model_validate_json(self.table.body(item)) if item is not None else None
        if run is None or run.group_id is None:
            return HistoryScope("by_run", keys.run_messages(tenant_id, run_id))
        partition = keys.listing("Message", tenant_id, group_id=run.group_id)
        ended = run.completed_at if run.is_terminal and run.completed_at is not None else None
        ceiling = window_ceiling(ended) if ended is not None else None
        return HistoryScope("by_group", partition, window_floor(run.created_at), run_id, ceiling)

    async def delete_group_messages(self, tenant_id: str, group_id: str) -> int:
        scope = HistoryScope("by_group", keys.listing("Message", tenant_id, group_id=group_id))
        return await self._call(self._delete_messages_sync, scope)

    async def delete_run_messages(self, tenant_id: str, run_id: str) -> int:
        return await self._call(lambda: self._delete_messages_sync(self._run_scope(tenant_id, run_id)))

    def _delete_messages_sync(self, scope: HistoryScope) -> int:
        """Delete the messages of a scope (with their parts); returns how many."""
        condition, names, values = partition_range(scope.index, scope.partition, scope.floor, scope.ceiling)
        query = {
            "IndexName": scope.index,
            "KeyConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ProjectionExpression": f"PK, SK, parts, {ORDER_KEY}",
        }
        items = [item for item in self.table.query(**query) if scope.keeps(item)]
        self.table.delete_keys([{"PK": i["PK"], "SK": i["SK"]} for i in items])
        for item in items:
            self.table.drop_parts(item)
        return len(items)
