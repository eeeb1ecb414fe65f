"""A Plan that ran its run's last round ends the run from its driver (`held_end`), reading nothing again.

Counted, not timed: the DynamoDB read requests made while the run is finished. Ending it from
outside (`finalize`) read the run three times and queried its log (end, tail) and steps five times
(10 reads with the two below); the driver holds all of that, so what is left is the read inside the
transaction that ends the run and the read of the group's line (its next queued run). What the
finish writes is what `finalize` writes: the stored run and its log are compared, field by field,
with those of the same run ended the re-reading way. A run changed meanwhile (a cancel requested
after its last round) is ended by `finalize`, cancelled, as before."""

from __future__ import annotations

import contextvars
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from unittest import mock

import pytest

from chorus.runs.finisher import update_run
from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.dynamodb_wire import DynamoDBTable
from chorus.store.records import RunRecord
from chorus.workflow.tasks import Workflow
from support import create_agent, create_group
from support.workflow_harness import (
    Harness,
    check_exact,
    direct_harness,
    elided,
    ended,
    history_of,
    inline_harness,
    is_direct,
    logged,
    send,
)

T = TypeVar("T")
READS = frozenset({"get_item", "query", "batch_get_item", "transact_get_items", "scan"})
FINISHING: contextvars.ContextVar[bool] = contextvars.ContextVar("finishing", default=False)
VARYING = frozenset(
    {"created_at", "completed_at", "expires_at", "total_duration_ns", "ttft_ns", "date", "otid", "traceparent"}
)
"""What differs between two runs of the same conversation besides ids: when they ran, how long."""


@pytest.fixture(params=["inline", "direct"])
async def planned(
    request: pytest.FixtureRequest, workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """Both Plans that finish a run themselves: an execution's inline Plan, and a direct one."""
    start = direct_harness if request.param == "direct" else inline_harness
    async with start(workflow_settings, monkeypatch) as h:
        yield h


@contextmanager
def finishing_reads(before: Callable[[Workflow, dict[str, Any]], Any] | None = None) -> Iterator[Counter[str]]:
    """Read requests made while `Workflow.finish` runs (its flusher included), by operation. The
    store calls DynamoDB on worker threads: each call made in the finish is tagged on its way there.
    `before` runs as the finish starts (to change the run under it)."""
    counted: Counter[str] = Counter()
    origin = threading.local()
    store_call, table_call, finish = DynamoDBCore._call, DynamoDBTable.call, Workflow.finish

    async def tagged_call(self: DynamoDBCore, fn: Callable[..., T], *args: Any) -> T:
        if not FINISHING.get():
            return await store_call(self, fn, *args)

        def tagged(*inner: Any) -> T:
            origin.finishing = True
            try:
                return fn(*inner)
            finally:
                origin.finishing = False

        return await store_call(self, tagged, *args)

    def counted_call(self: DynamoDBTable, operation: str, **kwargs: Any) -> dict[str, Any]:
        if operation in READS and getattr(origin, "finishing", False):
            counted[operation] += 1
        return table_call(self, operation, **kwargs)

    async def finishing(self: Workflow, raw: dict[str, Any], held: Any = None) -> dict[str, Any]:
        if before is not None:
            await before(self, raw)
        token = FINISHING.set(True)
        try:
            return await finish(self, raw, held)
        finally:
            FINISHING.reset(token)

    with (
        mock.patch.object(DynamoDBCore, "_call", tagged_call),
        mock.patch.object(DynamoDBTable, "call", counted_call),
        mock.patch.object(Workflow, "finish", finishing),
    ):
        yield counted


async def round_robin(h: Harness, **last: Any) -> str:
    """Ada, Bob and Cy, Cy scripted with `last` (an error, say)."""
    agents = [await create_agent(h.client, name, tokens=3) for name in ("Ada", "Bob")]
    agents.append(await create_agent(h.client, "Cy", tokens=3, **last))
    return str((await create_group(h.client, [a["id"] for a in agents]))["id"])


async def one_run(h: Harness, group_id: str, status: str = "completed") -> RunRecord:
    run = await send(h, group_id, "go")
    (done,) = await ended(h, [run])
    assert done["status"] == status, done
    stored: RunRecord = await h.store.get_run("default", run["id"])
    return stored


async def test_the_plan_ends_its_run_reading_only_the_ending_write_and_the_groups_line(planned: Harness) -> None:
    h = planned
    group_id = await round_robin(h)
    with finishing_reads() as reads:
        run = await one_run(h, group_id)
    assert reads == Counter(get_item=2), "the run inside the write that ends it, and the group's line"
    assert h.faults.count("finish") == 0 and h.faults.count("step") == 0
    check_exact(await logged(h, run.id), await history_of(h, group_id))


@pytest.mark.parametrize(
    ("last", "status", "steps"), [({}, "completed", 3), ({"error": "invalid_llm_response"}, "failed", 2)]
)
async def test_the_run_and_its_log_end_as_finalize_ends_them(
    planned: Harness, last: dict[str, Any], status: str, steps: int
) -> None:
    """The same conversation twice, on two groups: ended the re-reading way, then from the driver;
    completed, and failed by a model error (an execution's inline Plan leaves that one to Finish)."""
    h = planned
    with mock.patch("chorus.workflow.tasks.end_held", _not_held), finishing_reads() as reads:
        outside = await one_run(h, await round_robin(h, **last), status)
    assert sum(reads.values()) > 2, "the first run was ended the re-reading way"
    with finishing_reads() as reads:
        held = await one_run(h, await round_robin(h, **last), status)
    ends_held = is_direct(h) or not last  # an execution's failed Plan is caught into the Finish task
    assert (reads == Counter(get_item=2)) == ends_held, reads
    assert elided(held.model_dump(), VARYING) == elided(outside.model_dump(), VARYING)
    assert held.usage["step_count"] == steps and held.usage["completion_tokens"] > 0  # type: ignore[index]
    assert elided(await logged(h, held.id), VARYING) == elided(await logged(h, outside.id), VARYING)
    assert (await h.store.get_group_queue("default", held.group_id or "")).next is None


async def test_a_cancel_requested_after_the_last_round_ends_the_run_cancelled(planned: Harness) -> None:
    """The holder's copy of the run is out of date: its conditional end writes nothing, and the run
    is finalized from the store, which sees the cancel."""
    h = planned

    async def cancel(workflow: Workflow, raw: dict[str, Any]) -> None:
        run = await workflow.store.get_run(raw["tenant_id"], raw["run_id"])
        await update_run(workflow.store, run, lambda r: r.model_copy(update={"cancel_requested": True}))

    group_id = await round_robin(h)
    with finishing_reads(cancel) as reads:
        run = await send(h, group_id, "go")
        (done,) = await ended(h, [run])
    assert (done["status"], done["stop_reason"]) == ("cancelled", "cancelled")
    assert sum(reads.values()) > 2, "finalized from the store"
    log = await logged(h, run["id"])
    assert [e["stop_reason"] for e in log if e["message_type"] == "stop_reason"] == ["cancelled"]
    assert [e["seq_id"] for e in log] == list(range(1, len(log) + 1)), "nothing of the refused end was written"


async def _not_held(*_: Any) -> None:
    """`end_held` declining: the run is ended from outside, as before the driver could end it."""
    return None
