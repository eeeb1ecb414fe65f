"""A workflow task marks its run running; a run cancelled between the task's read and that write stays cancelled."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import cast

from chorus.runs.holding import RunHolder
from chorus.runs.lease import Lease
from chorus.runs.loading import LoadedRun
from chorus.store.records import RunRecord
from chorus.store.sqlite import SQLiteStore

NOW = "2026-11-25T08:00:00+00:00"


async def test_a_run_cancelled_before_the_task_marks_it_running_stays_cancelled(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    try:
        read = RunRecord(tenant_id="t1", id="run-1", created_at=NOW, agent_id="a", background=True)
        await store.put_run(read)
        ended = read.model_copy(update={"status": "cancelled", "stop_reason": "cancelled", "cancel_requested": True})
        await store.update_run(ended, expect_version=0)  # a cancel lands after the task read the run
        loaded = cast(LoadedRun, SimpleNamespace(run=read))  # all a holder reads of what the task loaded
        holder = RunHolder(store, loaded, Lease(owner="workflow:run-1", renew=False))
        await holder.mark_running()
        assert (await store.get_run("t1", "run-1")).status == "cancelled"
    finally:
        await store.close()
