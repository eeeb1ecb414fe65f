"""The event-log methods of `DynamoDBStore`, on its `DynamoDBEventLog` (`dynamodb_log`).

`end_log` joins the run record's terminal put, conditioned on the version it
read, to the transaction that writes `[DONE]`, so a log is never complete while
its run is not.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chorus.errors import NotFound
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.dynamodb_keys import Item, n
from chorus.store.records import RunRecord


class DynamoDBEvents(DynamoDBCore):
    """The append, end, read and last-seq methods of the `store` port."""

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
