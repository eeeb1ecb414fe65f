"""Streaming overhead of Chorus over the physical limit, measured in one run.

Method: two real uvicorn servers on loopback, started the same way: Chorus
(fresh SQLite) and `bare_sse.py`, a bare Starlette SSE endpoint. Scenario: a
round-robin group of 3 agents x 200 tokens on the scripted model with zero
delay, `stream_tokens=true` (600 token events), against the bare endpoint
streaming 600 events of the same shape. Rounds alternate Chorus and bare
(after warm-up), each read to `[DONE]` with httpx; the group's history is
reset between rounds so every Chorus round does identical work. Reported:
median time to first byte and to `[DONE]`, the per-token overhead
(median total difference / 600) and the TTFB overhead, and a check that
every Chorus stream carried 600 chunks with gapless `seq_id`.
Targets: per-token overhead <= 30 us, TTFB overhead <= 5 ms.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

from chorus.devserver import free_port, running_server

AGENTS, TOKENS = 3, 200
HERE = Path(__file__).resolve().parent


def read(client: httpx.Client, path: str, body: dict[str, object]) -> tuple[float, float, bytes]:
    started = time.perf_counter()
    first = 0.0
    data = b""
    with client.stream("POST", path, json=body) as response:
        for chunk in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
            data += chunk
    return first, time.perf_counter() - started, data


def verify(data: bytes) -> bool:
    events = [json.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: {")]
    chunks = [e for e in events if e["message_type"] == "assistant_message"]
    return len(chunks) == AGENTS * TOKENS and [e["seq_id"] for e in events] == list(range(1, len(events) + 1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    port = free_port()
    bare = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bare_sse:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"]
    )  # fmt: skip
    try:
        with running_server() as server, httpx.Client(base_url=server.url, timeout=60) as chorus:
            bare_url = f"http://127.0.0.1:{port}"
            for _ in range(100):
                try:
                    httpx.post(f"{bare_url}/stream?n=1", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            agents = [
                chorus.post("/v1/agents", json={"name": f"A{i}", "metadata": {"scripted": {"tokens": TOKENS}}}).json()
                for i in range(AGENTS)
            ]
            group = chorus.post("/v1/groups", json={"agent_ids": [a["id"] for a in agents]}).json()["id"]
            body = {"input": "hi", "stream_tokens": True, "include_pings": False}
            chorus_times: list[tuple[float, float]] = []
            bare_times: list[tuple[float, float]] = []
            verified = True
            with httpx.Client(base_url=bare_url, timeout=60) as plain:
                for i in range(args.rounds + 2):
                    chorus.patch(f"/v1/groups/{group}/reset-messages")
                    c_first, c_total, data = read(chorus, f"/v1/groups/{group}/messages/stream", body)
                    verified = verified and verify(data)
                    b_first, b_total, _ = read(plain, f"/stream?n={AGENTS * TOKENS}", {})
                    if i >= 2:
                        chorus_times.append((c_first, c_total))
                        bare_times.append((b_first, b_total))
    finally:
        bare.terminate()
        bare.wait(timeout=10)

    def median(values: list[tuple[float, float]], index: int) -> float:
        return statistics.median(v[index] for v in values)

    per_token_us = (median(chorus_times, 1) - median(bare_times, 1)) / (AGENTS * TOKENS) * 1e6
    ttfb_ms = (median(chorus_times, 0) - median(bare_times, 0)) * 1000
    report = {
        "benchmark": "stream_overhead",
        "scenario": f"round robin, {AGENTS} agents x {TOKENS} tokens, stream_tokens, zero model delay",
        "rounds": args.rounds,
        "chorus": {
            "ttfb_ms": round(median(chorus_times, 0) * 1000, 3),
            "total_ms": round(median(chorus_times, 1) * 1000, 3),
        },
        "bare_sse": {
            "ttfb_ms": round(median(bare_times, 0) * 1000, 3),
            "total_ms": round(median(bare_times, 1) * 1000, 3),
        },
        "per_token_overhead_us": round(per_token_us, 2),
        "ttfb_overhead_ms": round(ttfb_ms, 3),
        "targets": {"per_token_overhead_us": 30, "ttfb_overhead_ms": 5},
        "met": {"per_token_overhead_us": per_token_us <= 30, "ttfb_overhead_ms": ttfb_ms <= 5},
        "verified": verified,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
