"""Supervisor fan-out scaling: wall time must follow the slowest worker, not the sum of workers.

Method: one real uvicorn server on loopback (fresh SQLite). For each size N
in 1, 8 and 32, a supervisor group whose manager and N workers run on the
scripted model with a per-token delay (a real model's pace): every worker
answers `TOKENS` tokens `DELAY_S` apart, so one worker takes
TOKENS x DELAY_S. A run = the manager's broadcast, the N workers in
parallel, the manager's answer. Rounds alternate the sizes (after a
warm-up), each streamed with `stream_tokens=true` and read to `[DONE]` with
httpx; each group's history is reset between rounds so rounds do identical
work. Reported: median wall time per size, the ratios N / 1, and what N
workers would take one after another (N x one worker's time). Each stream
is verified: every worker's reply present, in `agent_ids` order, not
interleaved, `step_count` N + 2, `seq_id` gapless.
Target: fan-out 32 time / single worker time <= 1.5.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from typing import Any

import httpx

from chorus.devserver import running_server

SIZES = (1, 8, 32)
TOKENS, DELAY_S = 20, 0.01


def make_group(client: httpx.Client, size: int) -> tuple[str, list[str]]:
    script = {"scripted": {"tokens": TOKENS, "delay_s": DELAY_S}}
    manager = client.post("/v1/agents", json={"name": f"Lead{size}", "metadata": script}).json()["id"]
    names = [f"W{size}x{i}" for i in range(size)]
    workers = [client.post("/v1/agents", json={"name": n, "metadata": script}).json()["id"] for n in names]
    config = {"manager_type": "supervisor", "manager_agent_id": manager}
    group = client.post("/v1/groups", json={"agent_ids": workers, "manager_config": config}).json()["id"]
    return group, names


def run_once(client: httpx.Client, group: str) -> tuple[float, list[dict[str, Any]]]:
    body = {"input": "Each of you: one idea.", "stream_tokens": True, "include_pings": False}
    started = time.perf_counter()
    response = client.post(f"/v1/groups/{group}/messages/stream", json=body)
    elapsed = time.perf_counter() - started
    events = [json.loads(line[6:]) for line in response.text.split("\n") if line.startswith("data: {")]
    return elapsed, events


def verify(events: list[dict[str, Any]], names: list[str]) -> bool:
    speakers: list[str] = []
    for e in events:
        if e["message_type"] == "assistant_message" and (not speakers or speakers[-1] != e["name"]):
            speakers.append(e["name"])
    usage = events[-1]
    return (
        speakers[:-1] == names
        and usage.get("step_count") == len(names) + 2
        and [e["seq_id"] for e in events] == list(range(1, len(events) + 1))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    times: dict[int, list[float]] = {size: [] for size in SIZES}
    verified = True
    with running_server() as server, httpx.Client(base_url=server.url, timeout=120) as client:
        groups = {size: make_group(client, size) for size in SIZES}
        for i in range(args.rounds + 1):
            for size in SIZES:
                group, names = groups[size]
                client.patch(f"/v1/groups/{group}/reset-messages")
                elapsed, events = run_once(client, group)
                verified = verified and verify(events, names)
                if i >= 1:
                    times[size].append(elapsed)
    median = {size: statistics.median(values) for size, values in times.items()}
    one_worker_s = TOKENS * DELAY_S
    ratio_32 = median[32] / median[1]
    report = {
        "benchmark": "fanout",
        "scenario": (
            f"supervisor broadcast to N workers, each {TOKENS} tokens x {DELAY_S * 1000:.0f} ms, "
            "stream_tokens, real uvicorn + SQLite"
        ),
        "rounds": args.rounds,
        "median_ms": {str(size): round(value * 1000, 1) for size, value in median.items()},
        "ratio_to_one_worker": {str(size): round(median[size] / median[1], 3) for size in SIZES},
        "sequential_estimate_ms": {str(size): round(size * one_worker_s * 1000, 1) for size in SIZES},
        "ratio_32_over_1": round(ratio_32, 3),
        "target": {"ratio_32_over_1": 1.5},
        "met": ratio_32 <= 1.5,
        "verified": verified,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
