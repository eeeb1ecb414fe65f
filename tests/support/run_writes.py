"""The writes of run items during a test, by the task that made them: a store spy for the workflow harness.

A run item is in four indexes, so each write of it costs five write units: what a directly started
run's first attempt must not spend before the run's end."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from unittest import mock

from chorus.store.dynamodb import DynamoDBStore
from chorus.store.records import RunRecord
from support.lambda_async import LEASE_TTL_S
from support.workflow_harness import Harness


@dataclass(frozen=True, slots=True)
class Write:
    task: str
    """The task whose thread wrote the run item ("api": the API's own)."""
    at: float
    run: RunRecord
    """The run as written."""


@contextlib.contextmanager
def run_writes(h: Harness) -> Iterator[list[Write]]:
    """Every write of a run item (`put_run`, `update_run`, the run ended with its log), by whom and when."""
    writes: list[Write] = []
    put, update, end_log = DynamoDBStore.put_run, DynamoDBStore.update_run, DynamoDBStore.end_log

    def note(run: RunRecord) -> None:
        here = h.faults.here()
        writes.append(Write(here[0] if here is not None else "api", time.time(), run))

    async def putting(self: DynamoDBStore, run: RunRecord) -> None:
        await put(self, run)
        note(run)

    async def updating(self: DynamoDBStore, run: RunRecord, *, expect_version: int) -> RunRecord:
        stored = await update(self, run, expect_version=expect_version)
        note(stored)
        return stored

    async def ending(self: DynamoDBStore, *args: Any, **kwargs: Any) -> RunRecord:
        stored = await end_log(self, *args, **kwargs)
        note(stored)
        return stored

    with (
        mock.patch.object(DynamoDBStore, "put_run", putting),
        mock.patch.object(DynamoDBStore, "update_run", updating),
        mock.patch.object(DynamoDBStore, "end_log", ending),
    ):
        yield writes


def of_run(writes: list[Write], run_id: str, task: str | None = None) -> list[Write]:
    return [w for w in writes if w.run.id == run_id and (task is None or w.task == task)]


def renewal(write: Write, owner: str) -> bool:
    """A write that keeps the run running under `owner`'s lease, at its first incarnation."""
    return write.run.status == "running" and write.run.lease_owner == owner and write.run.incarnation == 1


def only_renewed(writes: list[Write], owner: str) -> bool:
    """Every write of the run between its creation and its end renews `owner`'s lease, as a
    heartbeat does: only once a third of the lease is used, so never a write that takes the run."""
    created, *held, _ = writes
    before = [created, *held]
    return all(
        renewal(w, owner) and b.run.lease_expires_at - w.at <= LEASE_TTL_S * 2 / 3
        for b, w in zip(before, held, strict=False)
    )
