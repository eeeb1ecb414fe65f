"""What OpenTelemetry tracing costs per agent step, on against off, measured in one run.

Method: the app in-process (SQLite in a temporary directory, httpx's ASGI
transport, so only Chorus's own work is timed), a round-robin group of 3
agents x 20 tokens on the scripted model with zero delay and
`stream_tokens=true`, the group's history reset between samples so every
run does identical work. Samples alternate tracing off (`NO_TRACING`) and
on (`OtelTracing`: a batch processor exporting over OTLP/HTTP to a
collector-shaped receiver on loopback, as in production), after warm-up.
Reported: median run time off and on, their ratio, the overhead per agent
step (median difference / 3 steps) and the spans each run exported (its root,
3 rounds, 3 turns, 3 model calls).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from chorus import tracing
from chorus.api import create_app
from chorus.otel import OtelTracing
from chorus.settings import Settings

# the collector-shaped receiver is the tests' (tests/e2e/test_otlp_export.py)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.otlp_receiver import otlp_receiver

AGENTS, TOKENS = 3, 20


async def one_run(client: httpx.AsyncClient, group_id: str) -> float:
    started = time.perf_counter()
    response = await client.post(f"/v1/groups/{group_id}/messages/stream", json={"input": "hi", "stream_tokens": True})
    elapsed = time.perf_counter() - started
    if response.status_code != 200 or not response.text.rstrip().endswith("data: [DONE]"):
        raise RuntimeError(f"the run did not end with [DONE]: {response.text[-200:]}")
    await client.patch(f"/v1/groups/{group_id}/reset-messages")
    return elapsed


async def measure(rounds: int, warmup: int, endpoint: str) -> dict[str, Any]:
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] = endpoint
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    traced = OtelTracing(BatchSpanProcessor(OTLPSpanExporter()))
    with tempfile.TemporaryDirectory(prefix="chorus-bench-") as tmp:
        app = create_app(Settings(db_path=Path(tmp) / "chorus.db"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=60) as client:
                agents = [
                    (
                        await client.post(
                            "/v1/agents", json={"name": f"A{i}", "metadata": {"scripted": {"tokens": TOKENS}}}
                        )
                    ).json()
                    for i in range(AGENTS)
                ]
                group = (await client.post("/v1/groups", json={"agent_ids": [a["id"] for a in agents]})).json()["id"]
                off: list[float] = []
                on: list[float] = []
                for i in range(warmup + rounds):
                    tracing.install(tracing.NO_TRACING)
                    off_s = await one_run(client, group)
                    tracing.install(traced)
                    on_s = await one_run(client, group)
                    if i >= warmup:
                        off.append(off_s)
                        on.append(on_s)
    tracing.install(None)
    traced.flush()
    traced.shutdown()
    off_ms, on_ms = statistics.median(off) * 1000, statistics.median(on) * 1000
    return {
        "off_ms_median": round(off_ms, 2),
        "on_ms_median": round(on_ms, 2),
        "on_over_off": round(on_ms / off_ms, 3),
        "overhead_per_step_us": round((on_ms - off_ms) * 1000 / AGENTS, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    with otlp_receiver() as receiver:
        figures = asyncio.run(measure(args.rounds, args.warmup, receiver.url))
        traced_runs = args.rounds + args.warmup
        spans_per_run = len(receiver.spans) / traced_runs
    report = {
        "benchmark": "tracing",
        "scenario": f"{AGENTS} agents x {TOKENS} tokens, round robin, stream_tokens, scripted model, in-process",
        "rounds": args.rounds,
        **figures,
        "spans_per_run": round(spans_per_run, 2),
        "exported_to": "OTLP/HTTP protobuf, batch processor, collector-shaped receiver on loopback",
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
