"""Recovery counts the workers that died on the same step, not on the run: a run that progresses is never failed."""

from __future__ import annotations

import json
from pathlib import Path

from chorus.runs.attempts import RECOVERY, deaths_after, last_doing, poisoned_message
from chorus.store.records import RunRecord, StepRecord
from chorus.store.sqlite import SQLiteStore

NOW = "2026-11-25T08:00:00+00:00"


def run(**options: object) -> RunRecord:
    return RunRecord(tenant_id="t1", id="run-1", created_at=NOW, agent_id="agent-1", status="running", options=options)


async def commit(store: SQLiteStore, n: int) -> None:
    step = StepRecord(tenant_id="t1", id=f"step-{n}", created_at=NOW, run_id="run-1", step_key=f"{n:05d}", log_seq=n)
    await store.commit_step(step, [])


async def test_deaths_count_per_step(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    try:
        await store.put_run(run())
        await commit(store, 0)
        first = await deaths_after(store, run())
        assert (first.steps, first.count) == (1, 1), "the first worker died on the step after the input"
        again = await deaths_after(store, run(**{RECOVERY: first.as_option()}))
        assert again.count == 2, "the next worker died on the same step"
        await commit(store, 1)
        moved = await deaths_after(store, run(**{RECOVERY: again.as_option()}))
        assert (moved.steps, moved.count, moved.log_seq) == (2, 1, 1), "a step committed since: the count restarts"
    finally:
        await store.close()


async def test_the_message_names_what_the_dead_worker_was_doing(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "chorus.db")
    await store.open()
    try:
        await store.put_run(run())
        call = {"name": "kill_server", "arguments": "{}", "tool_call_id": "c1"}
        events = [
            '{"message_type":"assistant_message","id":"m1","name":"Ada","step_id":"step-a","seq_id":1}',
            '{"message_type":"tool_call_message","id":"m2","name":"Mallory","step_id":"step-m","tool_call":'
            + json.dumps(call)
            + ',"seq_id":2}',
        ]
        await store.append_events("t1", "run-1", 1, events)
        doing = await last_doing(store, run(), after_seq=1)
        assert doing.describe() == "step step-m of agent Mallory calling tool kill_server"
        assert doing.message_ids == ("m2",), "only what followed the last committed step"
        nothing = await last_doing(store, run(), after_seq=2)
        assert nothing.describe() == "" and not nothing.message_ids, "nothing logged after the last committed step"
        message = poisoned_message(await deaths_after(store, run()), doing.describe())
        assert "stopped 1 times" in message and "kill_server" in message
    finally:
        await store.close()
