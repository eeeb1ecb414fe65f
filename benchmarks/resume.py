"""Resume throughput: replay a 10,000-event run log from SQLite, over HTTP and in-process.

Method: a real server (uvicorn, fresh SQLite) runs one background group run
whose single agent streams 9,998 token chunks (plus stop reason and usage:
10,000 logged events). Then, in the same process run, the log is replayed
`--rounds` times (a) over HTTP with `POST /v1/runs/{id}/stream`
(`starting_after=0`, `batch_size=1000`), read to `[DONE]` by httpx, (b)
in-process through the store tailer on the same file, and (c) the same log
copied into a DynamoDB table on moto (appended in batches of 64, as the run
log writes) replayed through the same tailer (moto's in-memory backend, not
network latency, is what (c) measures). Medians are printed as JSON with
events/s; the target is at most 100 ms to `[DONE]` over HTTP on SQLite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx

from chorus.devserver import running_server
from chorus.runs.tailer import tail_store
from chorus.store.sqlite import SQLiteStore
from moto_dynamodb import moto_store

EVENTS = 10_000


def make_run(url: str) -> str:
    with httpx.Client(base_url=url, timeout=120) as client:
        agent = client.post(
            "/v1/agents", json={"name": "Long", "metadata": {"scripted": {"tokens": EVENTS - 2}}}
        ).json()
        group = client.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()
        body = {"input": "go", "background": True, "stream_tokens": True, "include_pings": False}
        run_id = None
        with client.stream("POST", f"/v1/groups/{group['id']}/messages/stream", json=body) as response:
            for line in response.iter_lines():
                if run_id is None and line.startswith("data: {"):
                    run_id = json.loads(line[6:]).get("run_id")
        assert run_id is not None
        return str(run_id)


def replay_http(url: str, run_id: str) -> tuple[float, int]:
    started = time.perf_counter()
    count = 0
    with (
        httpx.Client(base_url=url, timeout=60) as client,
        client.stream(
            "POST", f"/v1/runs/{run_id}/stream", json={"starting_after": 0, "batch_size": 1000, "include_pings": False}
        ) as response,
    ):
        for line in response.iter_lines():
            if line.startswith("data: "):
                count += 1
    return time.perf_counter() - started, count


async def replay_store(db: Path, run_id: str) -> tuple[float, int]:
    store = SQLiteStore(db)
    await store.open()
    try:
        started = time.perf_counter()
        body = b"".join(
            [
                part
                async for part in tail_store(
                    store, "default", run_id, 0, batch_size=1000, poll_interval=0.01, ping_interval=None
                )
            ]
        )
        return time.perf_counter() - started, body.count(b"data: ")
    finally:
        await store.close()


async def replay_dynamodb(db: Path, run_id: str, rounds: int) -> tuple[float, int]:
    """Median seconds to replay the run's log from DynamoDB (moto), and the frames read."""
    source = SQLiteStore(db)
    await source.open()
    rows = await source.read_events("default", run_id, 0, 1_000_000)
    await source.close()
    with moto_store("chorus-resume") as (store, _calls):
        await store.open()
        for i in range(0, len(rows), 64):
            batch = rows[i : i + 64]
            await store.append_events("default", run_id, batch[0][0], [data for _, data in batch])
        times, count = [], 0
        for _ in range(rounds):
            started = time.perf_counter()
            parts = [
                p
                async for p in tail_store(
                    store, "default", run_id, 0, batch_size=1000, poll_interval=0.01, ping_interval=None
                )
            ]
            times.append(time.perf_counter() - started)
            count = b"".join(parts).count(b"data: ")
        await store.close()
    return statistics.median(times), count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with running_server() as server:
        url, db = server.url, server.db_path
        run_id = make_run(url)
        replay_http(url, run_id)
        http_times, store_times = [], []
        for _ in range(args.rounds):
            elapsed, count = replay_http(url, run_id)
            assert count == EVENTS + 1, count
            http_times.append(elapsed)
            elapsed, count = asyncio.run(replay_store(db, run_id))
            assert count == EVENTS + 1, count
            store_times.append(elapsed)
        dynamo_s, dynamo_count = asyncio.run(replay_dynamodb(db, run_id, max(3, args.rounds // 3)))
        assert dynamo_count == EVENTS + 1, dynamo_count
    http_ms = statistics.median(http_times) * 1000
    store_ms = statistics.median(store_times) * 1000
    report = {
        "benchmark": "resume",
        "events": EVENTS,
        "rounds": args.rounds,
        "http_replay_ms_median": round(http_ms, 2),
        "http_events_per_s": round(EVENTS / (http_ms / 1000)),
        "store_replay_ms_median": round(store_ms, 2),
        "store_events_per_s": round(EVENTS / (store_ms / 1000)),
        "dynamodb_moto_replay_ms_median": round(dynamo_s * 1000, 2),
        "dynamodb_moto_events_per_s": round(EVENTS / dynamo_s),
        "target_ms": 100,
        "target_met": http_ms <= 100,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
