"""Load: N concurrent streaming group runs against one real uvicorn process, every stream checked against its log.

Method: one Chorus server (uvicorn on loopback, fresh SQLite), N groups of
the same 2 scripted agents answering `--tokens` tokens `--delay-ms` apart
(a model's pace, so every stream stays open at once). After one warm-up
stream, the N streams start together (httpx, one connection each, read to
`[DONE]`). Reported: time to first byte p50/p99/max, runs and events per
second over the whole load, and the server's resident memory (`VmRSS`)
idle, when every stream had its first byte, and at its peak: memory per
concurrent stream = (all open - idle) / N. Then every run must be terminal
and every stream equal its stored log: lost, duplicated, reordered,
changed all 0 (`tests/support/streamcheck.py`). The whole load is bounded by `--timeout-s`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

from chorus.devserver import running_server

# The load generator and stream checker are the tests' (tests/e2e/test_load.py runs the same load, smaller).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.loadgen import Scenario, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--streams", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=40)
    parser.add_argument("--delay-ms", type=float, default=20)
    parser.add_argument("--timeout-s", type=float, default=120)
    args = parser.parse_args()
    scenario = Scenario(
        streams=args.streams, agents=2, tokens=args.tokens, delay_s=args.delay_ms / 1000, timeout_s=args.timeout_s
    )
    # one tenant with every stream active at once: the operator raises the tenant's active-run limit for it
    with running_server({"CHORUS_MAX_ACTIVE_RUNS_PER_TENANT": str(args.streams)}) as server:
        result = asyncio.run(run_load(server.url, server.db_path, scenario, pid=server.pid))
    clean = result["lost"] == result["duplicated"] == result["runs_not_terminal"] == 0
    report = {
        "benchmark": "load",
        **result,
        "verified": clean and result["reordered"] == result["changed"] == result["log_gaps"] == 0,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
