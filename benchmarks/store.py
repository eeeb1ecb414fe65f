"""Store throughput: append and replay a run event log on SQLite and on DynamoDB (moto), in one run.

Method: for each adapter, a fresh store appends `--events` token-sized
events in batches of 64 (what `RunLog` writes under load: one
`append_events` per batch), then replays the whole log `--rounds` times with
`read_events` in batches of 1000 (what a resume does). DynamoDB runs
in-process on moto, so its figures measure the adapter plus moto's
in-memory backend, not network latency; the API call counts are what AWS
would see. Medians are printed as JSON.
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

from chorus.store.base import Store
from chorus.store.sqlite import SQLiteStore
from moto_dynamodb import moto_store

BATCH = 64
READ_BATCH = 1000


def event(seq: int) -> str:
    return json.dumps(
        {
            "id": "message-00000000-0000-4000-8000-000000000000",
            "message_type": "assistant_message",
            "content": f"token {seq} ",
            "run_id": "run-bench",
            "seq_id": seq,
        },
        separators=(",", ":"),
    )


async def measure(store: Store, events: int, rounds: int) -> dict[str, Any]:
    await store.open()
    try:
        started = time.perf_counter()
        for first in range(1, events + 1, BATCH):
            batch = [event(seq) for seq in range(first, min(first + BATCH, events + 1))]
            await store.append_events("bench", "run-bench", first, batch)
        append_s = time.perf_counter() - started
        replays = []
        for _ in range(rounds):
            started = time.perf_counter()
            cursor = 0
            while True:
                rows = await store.read_events("bench", "run-bench", cursor, READ_BATCH)
                if not rows:
                    break
                cursor = rows[-1][0]
            assert cursor == events, cursor
            replays.append(time.perf_counter() - started)
        replay_s = statistics.median(replays)
    finally:
        await store.close()
    return {
        "append_s": round(append_s, 4),
        "append_events_per_s": round(events / append_s),
        "replay_ms_median": round(replay_s * 1000, 2),
        "replay_events_per_s": round(events / replay_s),
    }


async def run_dynamodb(events: int, rounds: int) -> dict[str, Any]:
    with moto_store("chorus-bench") as (store, calls):
        result = await measure(store, events, rounds)
    result["calls"] = dict(calls)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = asyncio.run(measure(SQLiteStore(Path(tmp) / "bench.db"), args.events, args.rounds))
    dynamodb = asyncio.run(run_dynamodb(args.events, args.rounds))
    report = {
        "benchmark": "store",
        "events": args.events,
        "append_batch": BATCH,
        "read_batch": READ_BATCH,
        "rounds": args.rounds,
        "sqlite": sqlite,
        "dynamodb_moto": dynamodb,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
