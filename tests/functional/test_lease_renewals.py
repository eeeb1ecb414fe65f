"""A held lease is rewritten only once a third of it is used; the heartbeat reads the cancel flag every beat.

On DynamoDB a renewal rewrites the run record and its index entries (~10
write units), so renewing every second was most of a foreground run's
writes besides its log. Counted, not timed: the same run (two heartbeats
long, by the model's pace) with a 30 s lease and with the shortest lease.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from chorus.api import create_app
from chorus.settings import Settings
from chorus.store.sqlite import SQLiteStore
from support import create_agent, create_group
from support.benchmarks import load_benchmark

writes = load_benchmark("writes")


async def held_run(tmp_path: Path, lease_ttl_s: float) -> Any:
    counting = writes.Counting(SQLiteStore(tmp_path / f"lease-{lease_ttl_s}.db"))
    app = create_app(Settings(db_path=tmp_path / "unused.db", lease_ttl_s=lease_ttl_s), store=counting)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
            ada = await create_agent(client, "Ada", tokens=5, delay_s=0.5)
            group = await create_group(client, [ada["id"]])
            counting.calls.clear()
            response = await client.post(f"/v1/groups/{group['id']}/messages/stream", json={"input": "hi"})
            assert response.status_code == 200
    return counting.calls


async def test_a_run_renews_its_lease_only_when_a_third_is_used_and_still_watches_every_beat(tmp_path: Path) -> None:
    long_lease = await held_run(tmp_path, 30.0)
    short_lease = await held_run(tmp_path, 2.0)
    assert short_lease["update_run"] >= long_lease["update_run"] + 1, (short_lease, long_lease)
    assert long_lease["run_version"] >= 2, "the heartbeat read the run's version at each beat instead"
