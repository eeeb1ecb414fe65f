"""What a cold API environment pays before its first answer, and what a SnapStart snapshot takes off it.

Method: `--rounds` fresh interpreters, each with a Lambda-like environment
(`AWS_LAMBDA_FUNCTION_NAME` set, so Powertools loads as on Lambda; the
SQLite store, so no network is timed). Each measures, in order: importing
`functions/api/handler.py` (what Lambda's init runs), starting the app (its
lifespan: settings, store, run service), the first request of a group send's
path (`GET /v1/groups`, which includes the groups' route modules), and the
same request again (warm). A second set of interpreters runs SnapStart's
before-snapshot hook (`chorus.snapstart.warm_api`: every route module and
provider adapter) after starting the app, then times the first request: what
an environment restored from a snapshot still pays, besides Lambda's own
restore. Reported: medians, and init + first request with and without the
snapshot.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ENV = {"AWS_LAMBDA_FUNCTION_NAME": "chorus-bench", "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1"}

_PROBE = """
import asyncio, json, sys, time
started = time.perf_counter()
sys.path.insert(0, sys.argv[1])
import handler
imported = time.perf_counter()
import httpx
from chorus import snapstart

async def main():
    app = handler.app
    async with app.router.lifespan_context(app):
        running = time.perf_counter()
        if sys.argv[2] == "snapshot":
            snapstart.warm_api(app)
            snapstart.after_restore()
        warmed = time.perf_counter()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            t0 = time.perf_counter()
            assert (await client.get("/v1/groups")).status_code == 200
            t1 = time.perf_counter()
            assert (await client.get("/v1/groups")).status_code == 200
            t2 = time.perf_counter()
    return {"import_ms": (imported - started) * 1e3, "start_ms": (running - imported) * 1e3,
            "warm_hook_ms": (warmed - running) * 1e3, "first_request_ms": (t1 - t0) * 1e3,
            "second_request_ms": (t2 - t1) * 1e3}

print(json.dumps(asyncio.run(main())))
"""


def once(mode: str, db: Path) -> dict[str, float]:
    env = {**os.environ, **ENV, "CHORUS_DB_PATH": str(db)}
    for name in ("CHORUS_STORE", "CHORUS_EXECUTOR", "OTEL_EXPORTER_OTLP_ENDPOINT", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(ROOT / "functions" / "api"), mode],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    figures: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def medians(samples: list[dict[str, float]]) -> dict[str, float]:
    return {key: round(statistics.median(s[key] for s in samples), 1) for key in samples[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="chorus-coldstart-") as tmp:
        once("cold", Path(tmp) / "warmup.db")  # compile bytecode once, as a deployed layer ships it
        cold: list[dict[str, float]] = []
        restored: list[dict[str, float]] = []
        for i in range(args.rounds):  # interleaved, so both see the same machine
            cold.append(once("cold", Path(tmp) / f"cold-{i}.db"))
            restored.append(once("snapshot", Path(tmp) / f"snap-{i}.db"))
    c, r = medians(cold), medians(restored)
    report: dict[str, Any] = {
        "benchmark": "coldstart",
        "rounds": args.rounds,
        "environment": "Lambda-like (Powertools), SQLite store, in-process requests (no network timed)",
        "cold": c,
        "snapshot": r,
        "cold_init_and_first_request_ms": round(c["import_ms"] + c["start_ms"] + c["first_request_ms"], 1),
        "restored_first_request_ms": r["first_request_ms"],
        "before_snapshot_hook_ms": r["warm_hook_ms"],
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
