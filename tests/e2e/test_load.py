"""Load, CI-sized: concurrent streaming group runs against one real uvicorn, every stream against its log.

`benchmarks/load.py` runs the full size (200 streams) with timings and
memory; here `CHORUS_LOAD_STREAMS` (default 40) streams check counts only:
every run terminal, no event lost, duplicated, reordered or changed
(`benchmarks/loadgen.py`, `tests/support/streamcheck.py`). No timing is asserted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from chorus.devserver import Server, running_server
from support.loadgen import Scenario, run_load

STREAMS = int(os.environ.get("CHORUS_LOAD_STREAMS", "40"))


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """One tenant with every stream active at once: a load its operator allows by raising the tenant's limit."""
    with running_server({"CHORUS_MAX_ACTIVE_RUNS_PER_TENANT": str(STREAMS)}) as s:
        yield s


@pytest.mark.e2e
async def test_concurrent_streams_lose_and_duplicate_nothing(server: Server) -> None:
    scenario = Scenario(streams=STREAMS, agents=2, tokens=20, delay_s=0.005, timeout_s=120)
    report = await run_load(server.url, server.db_path, scenario)
    assert report["runs_started"] == STREAMS and report["runs"] == STREAMS, report
    assert report["runs_not_terminal"] == 0, report
    assert report["events_checked"] >= STREAMS * 2 * 20, report
    assert report["lost"] == report["duplicated"] == report["reordered"] == report["changed"] == 0, report
    assert report["log_gaps"] == 0, report
