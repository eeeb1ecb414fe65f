"""Ending a run from outside while its own writer still streams (a cancel of a run on Step
Functions: `StopExecution` does not stop the Lambda in flight until its heartbeat sees the flag).

The outside finisher read the log's end before the task appended more; its `[DONE]` must not be
lost for that, nor the run marked failed: it writes its last events again after the task's, and
the task's next append finds the log complete.
"""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from chorus.errors import Conflict, LogMoved
from chorus.runs.log import run_log
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.workflow.tasks import finalize
from support.contract_records import run


def token(n: int) -> str:
    return orjson.dumps({"message_type": "assistant_message", "content": f"tok{n}", "seq_id": n}).decode()


async def test_an_append_behind_the_end_is_log_moved_and_one_after_done_is_not(store: Store) -> None:
    r = run(status="running")
    await store.put_run(r)
    await store.append_events("t1", r.id, 1, [token(1), token(2)])
    with pytest.raises(LogMoved):
        await store.append_events("t1", r.id, 2, [token(2)])
    await store.append_events("t1", r.id, 3, ["[DONE]"])
    with pytest.raises(Conflict) as refused:
        await store.append_events("t1", r.id, 4, [token(4)])
    assert not isinstance(refused.value, LogMoved), "a complete log is not one to start again after"


async def test_a_cancel_finishing_behind_a_live_writer_still_ends_the_log_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    r = run(status="running", cancel_requested=True)
    await store.put_run(r)
    await store.append_events("t1", r.id, 1, [token(1)])
    real_last_seq = store.last_seq
    reads = 0

    async def last_seq_then_the_task_appends(tenant_id: str, run_id: str) -> int:
        """The finisher reads the end; the task, still streaming, appends two tokens right after."""
        nonlocal reads
        last = await real_last_seq(tenant_id, run_id)
        reads += 1
        if reads == 1:
            await store.append_events(tenant_id, run_id, last + 1, [token(last + 1), token(last + 2)])
        return last

    monkeypatch.setattr(store, "last_seq", last_seq_then_the_task_appends)
    ended = await finalize(store, Settings(log_flush_interval_s=0.01), r, "end_turn", None)
    monkeypatch.undo()

    assert ended.status == "cancelled" and ended.stop_reason == "cancelled"
    rows = await store.read_events("t1", r.id, 0, 100)
    assert [seq for seq, _ in rows] == list(range(1, len(rows) + 1)), "gapless"
    assert Counter(d for _, d in rows)["[DONE]"] == 1 and rows[-1][1] == "[DONE]"
    assert [orjson.loads(d).get("content") for _, d in rows[:3]] == ["tok1", "tok2", "tok3"]
    assert orjson.loads(rows[-2][1]) == {**orjson.loads(rows[-2][1]), "stop_reason": "cancelled"}
    task_log = run_log(store, Settings(), ended, 3)  # the task's writer, behind the end
    task_log.emit({"message_type": "assistant_message", "content": "late"})
    with pytest.raises(Conflict):
        await task_log.stop()
