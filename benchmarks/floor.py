"""Chorus against the floor, measured in one run: time to first byte and end to end.

Method: three real uvicorn processes on loopback: an OpenAI-compatible fake
with zero model delay (`openai_fake.py`, 20 tokens an answer), Chorus (fresh
SQLite, `OPENAI_BASE_URL` at the fake) and the floor (`floor_server.py`: the
same three streaming calls with the same `openai` client settings, the tokens
re-streamed over SSE, nothing else). Scenario: a round-robin group of 3 agents
on `openai/gpt-4o-mini`, 3 x 20 tokens. Each round (after warm-up), in turn:
Chorus with `stream_tokens=true`, the floor, Chorus with `stream_tokens=false`
and Chorus's non-streaming send, every Chorus sample on a fresh group (made
before the clock starts), each stream read to `[DONE]` with httpx.
Reported: medians of time to first byte and to the end, Chorus over the floor
end to end, Chorus's TTFB minus the floor's, and the other two sends over
token streaming. Targets: end to end <= 1.15x the floor, TTFB <=
the floor's + 3 ms, the other sends no slower than token streaming (<= 1.05x:
on this shared 2-core host a median of 40 moves by a few percent from run to
run, so "no slower" is read within that).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from chorus.devserver import free_port, running_server

AGENTS, TOKENS = 3, 20
HERE = Path(__file__).resolve().parent
MODEL = "openai/gpt-4o-mini"
NO_SLOWER = 1.05
"""A ratio of two medians of this run that still reads as "no slower" on a noisy shared host."""


@contextmanager
def uvicorn_app(module: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """`benchmarks/<module>.py`'s `app` under uvicorn on a free loopback port; its base URL."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", f"{module}:app", "--app-dir", str(HERE), "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


def stream(client: httpx.Client, path: str, body: dict[str, Any]) -> tuple[float, float, bytes]:
    """Time to the first body byte and to the end of a streamed POST, and the body."""
    started = time.perf_counter()
    first = 0.0
    data = b""
    with client.stream("POST", path, json=body) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
            data += chunk
    return first, time.perf_counter() - started, data


def tokens_in(data: bytes) -> int:
    """Assistant chunks in an SSE body (token streaming: one per token)."""
    return sum(1 for line in data.split(b"\n") if line.startswith(b"data: {") and b'"assistant_message"' in line)


def median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    samples: dict[str, list[tuple[float, float]]] = {"chorus": [], "floor": [], "steps": [], "buffered": []}
    verified = True
    with uvicorn_app("openai_fake") as fake:
        env = {"OPENAI_BASE_URL": f"{fake}/v1", "OPENAI_API_KEY": ""}
        with (
            uvicorn_app("floor_server", env) as floor_url,
            running_server(env) as server,
            httpx.Client(base_url=server.url, timeout=60) as chorus,
            httpx.Client(base_url=floor_url, timeout=60) as floor,
        ):
            agents = [
                chorus.post("/v1/agents", json={"name": f"A{i}", "system": f"You are A{i}.", "model": MODEL}).json()[
                    "id"
                ]
                for i in range(AGENTS)
            ]

            def fresh_group() -> str:
                return str(chorus.post("/v1/groups", json={"agent_ids": agents}).json()["id"])

            for i in range(args.warmup + args.rounds):
                keep = i >= args.warmup
                group = fresh_group()
                body = {"input": f"round {i}", "stream_tokens": True, "include_pings": False}
                first, total, data = stream(chorus, f"/v1/groups/{group}/messages/stream", body)
                verified = verified and tokens_in(data) == AGENTS * TOKENS and data.endswith(b"data: [DONE]\n\n")
                floor_first, floor_total, floor_data = stream(floor, "/stream", {"input": f"round {i}"})
                verified = verified and tokens_in(floor_data) == AGENTS * TOKENS
                group = fresh_group()
                steps_first, steps_total, steps = stream(
                    chorus, f"/v1/groups/{group}/messages/stream", {**body, "stream_tokens": False}
                )
                verified = verified and tokens_in(steps) == AGENTS
                group = fresh_group()
                started = time.perf_counter()
                answer = chorus.post(f"/v1/groups/{group}/messages", json={"input": f"round {i}"})
                buffered = time.perf_counter() - started
                verified = verified and answer.status_code == 200
                if keep:
                    samples["chorus"].append((first, total))
                    samples["floor"].append((floor_first, floor_total))
                    samples["steps"].append((steps_first, steps_total))
                    samples["buffered"].append((buffered, buffered))

    ttfb = {k: median_ms([s[0] for s in v]) for k, v in samples.items()}
    total = {k: median_ms([s[1] for s in v]) for k, v in samples.items()}
    over_floor = round(total["chorus"] / total["floor"], 3)
    ttfb_over = round(ttfb["chorus"] - ttfb["floor"], 3)
    steps_ratio = round(total["steps"] / total["chorus"], 3)
    buffered_ratio = round(total["buffered"] / total["chorus"], 3)
    report = {
        "benchmark": "floor",
        "scenario": f"round robin, {AGENTS} agents x {TOKENS} tokens, {MODEL} on a zero-delay OpenAI-compatible fake,"
        " a fresh group per Chorus sample",
        "rounds": args.rounds,
        "ttfb_ms": {
            "chorus_stream_tokens": ttfb["chorus"],
            "floor": ttfb["floor"],
            "chorus_stream_steps": ttfb["steps"],
        },
        "total_ms": {
            "chorus_stream_tokens": total["chorus"],
            "floor": total["floor"],
            "chorus_stream_steps": total["steps"],
            "chorus_non_streaming": total["buffered"],
        },
        "end_to_end_over_floor": over_floor,
        "ttfb_over_floor_ms": ttfb_over,
        "stream_steps_over_stream_tokens": steps_ratio,
        "non_streaming_over_stream_tokens": buffered_ratio,
        "targets": {
            "end_to_end_over_floor": 1.15,
            "ttfb_over_floor_ms": 3,
            "stream_steps_over_stream_tokens": NO_SLOWER,
            "non_streaming_over_stream_tokens": NO_SLOWER,
        },
        "met": {
            "end_to_end_over_floor": over_floor <= 1.15,
            "ttfb_over_floor_ms": ttfb_over <= 3,
            "stream_steps_over_stream_tokens": steps_ratio <= NO_SLOWER,
            "non_streaming_over_stream_tokens": buffered_ratio <= NO_SLOWER,
        },
        "verified": verified,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
