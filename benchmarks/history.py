"""What a send costs as a group's history grows, and what a summary costs, measured in one run.

Method: one real uvicorn server on loopback (fresh SQLite), round-robin groups of
3 agents on the scripted model (20 tokens, zero delay, `stream_tokens=true`),
each stream read to `[DONE]` with httpx.

- **TTFB vs history length**: a group seeded with 10,000 messages (written
  straight into the server's database, as 2,500 earlier runs would have left
  them: a human line, then each agent's reply) against a group of 10. The first
  send to the long group compacts its history (reported apart); then sends
  alternate between the two groups, and the medians of time to first byte and
  to `[DONE]` are compared. Target: long / short TTFB <= 1.5.
- **The 20th run on one group vs the first**: pairs of groups, one fresh and
  one that has had 19 runs, sent to back to back (so both meet the same
  host load); the median over pairs of run 20's time to `[DONE]` against run 1's.
- **Compaction cost per summary**: one group whose agents have a 2,000-token
  window, 60 sends; the median time to `[DONE]` of sends that made a summary
  against those that did not (both with the same history length range).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from chorus.devserver import running_server
from chorus.store.records import MessageRecord, StepRecord
from chorus.store.sqlite import SQLiteStore

AGENTS, TOKENS = 3, 20
BODY = {"stream_tokens": True, "include_pings": False}


def read(client: httpx.Client, group: str, text: str) -> tuple[float, float, list[dict[str, Any]]]:
    started = time.perf_counter()
    first = 0.0
    data = b""
    body = {**BODY, "input": text}
    with client.stream("POST", f"/v1/groups/{group}/messages/stream", json=body) as response:
        for chunk in response.iter_raw():
            if not first:
                first = time.perf_counter() - started
            data += chunk
    total = time.perf_counter() - started
    events = [json.loads(line[6:]) for line in data.split(b"\n") if line.startswith(b"data: {")]
    if not any(e.get("message_type") == "stop_reason" and e["stop_reason"] == "end_turn" for e in events):
        raise RuntimeError(f"a run did not end well: {events[-3:]}")
    return first, total, events


def group_of(client: httpx.Client, window: int | None = None) -> tuple[str, list[str]]:
    extra = {"context_window_limit": window} if window else {}
    agents = [
        client.post("/v1/agents", json={"name": f"A{i}", "metadata": {"scripted": {"tokens": TOKENS}}, **extra}).json()[
            "id"
        ]
        for i in range(AGENTS)
    ]
    return client.post("/v1/groups", json={"agent_ids": agents}).json()["id"], agents


def seed(db: Path, group: str, agents: list[str], count: int) -> None:
    """Write `count` history messages of `group` as earlier runs would have (in steps of 100)."""
    with sqlite3.connect(db) as raw:
        tenant = str(raw.execute("SELECT tenant_id FROM groups WHERE id = ?", (group,)).fetchone()[0])

    async def write() -> None:
        store = SQLiteStore(db)
        await store.open()
        try:
            base = time.time_ns() - count * 1_000_000
            for start in range(0, count, 100):
                run_id = f"run-seed-{start:06d}"
                key = "00001"
                records = []
                for i in range(start, min(start + 100, count)):
                    speaker = None if i % 4 == 0 else agents[i % 4 - 1]
                    kind = "user_message" if speaker is None else "assistant_message"
                    mid = f"message-seed-{i:06d}"
                    message = {
                        "id": mid,
                        "date": "2026-12-01T00:00:00+00:00",
                        "name": None if speaker is None else f"A{i % 4 - 1}",
                        "message_type": kind,
                        "otid": mid,
                        "sender_id": speaker,
                        "step_id": f"step-seed-{i:06d}",
                        "is_err": None,
                        "seq_id": None,
                        "run_id": run_id,
                        "content": f"message {i}: " + "a few words of an earlier exchange " * 2,
                    }
                    records.append(
                        MessageRecord(
                            tenant_id=tenant,
                            id=mid,
                            created_at="2026-12-01T00:00:00.000000+00:00",
                            group_id=group,
                            agent_id=speaker,
                            run_id=run_id,
                            step_key=key,
                            index=i - start,
                            position=f"{base + i * 1_000_000:020d}:{run_id}:{key}:{i - start:04d}",
                            message=message,
                        )
                    )
                step = StepRecord(
                    tenant_id=tenant, id=f"step-{run_id}", created_at=records[0].created_at, run_id=run_id, step_key=key
                )
                await store.commit_step(step, records)
        finally:
            await store.close()

    asyncio.run(write())


def median(values: list[float]) -> float:
    return round(statistics.median(values) * 1000, 3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--long", type=int, default=10_000)
    parser.add_argument("--groups", type=int, default=9)
    args = parser.parse_args()
    with running_server() as server, httpx.Client(base_url=server.url, timeout=120) as client:
        short, _ = group_of(client)
        long, agents = group_of(client)
        seed(server.db_path, long, agents, args.long)
        for i in range(6):
            read(client, short, f"warm-up {i}")
        started = time.perf_counter()
        _, _, first_events = read(client, long, "the first send to a long history")
        first_long_ms = round((time.perf_counter() - started) * 1000, 3)
        first_summaries = sum(1 for e in first_events if e.get("message_type") == "ping" and "summary" in e)
        timings: dict[str, list[tuple[float, float]]] = {"short": [], "long": []}
        for i in range(args.rounds):
            for name, group in (("short", short), ("long", long)):
                if name == "short" and i % 2 == 0:
                    client.patch(f"/v1/groups/{short}/reset-messages")  # it stays at 8 messages or fewer
                first, total, _ = read(client, group, f"round {i}")
                timings[name].append((first, total))

        growth: dict[int, list[float]] = {1: [], 20: []}
        for g in range(args.groups):
            fresh, _ = group_of(client)
            old, _ = group_of(client)
            for run in range(1, 20):
                read(client, old, f"group {g} run {run}")
            growth[1].append(read(client, fresh, f"group {g} run 1")[1])
            growth[20].append(read(client, old, f"group {g} run 20")[1])

        small, _ = group_of(client, window=2_000)
        with_summary: list[float] = []
        without: list[float] = []
        for i in range(60):
            _, total, events = read(client, small, f"compaction round {i}")
            made = any(e.get("message_type") == "ping" and "summary" in e for e in events)
            if i >= 10:
                (with_summary if made else without).append(total)

    ttfb = {k: median([t[0] for t in v]) for k, v in timings.items()}
    done = {k: median([t[1] for t in v]) for k, v in timings.items()}
    ttfb_ratio = round(ttfb["long"] / ttfb["short"], 3)
    run_ratio = round(statistics.median(growth[20]) / statistics.median(growth[1]), 3)
    report = {
        "benchmark": "history",
        "scenario": f"round robin, {AGENTS} agents x {TOKENS} tokens, stream_tokens, scripted model, SQLite",
        "ttfb_ms": {"10_messages": ttfb["short"], f"{args.long}_messages": ttfb["long"]},
        "done_ms": {"10_messages": done["short"], f"{args.long}_messages": done["long"]},
        "ttfb_ratio_long_over_short": ttfb_ratio,
        "first_send_to_long_history_ms": first_long_ms,
        "first_send_summaries": first_summaries,
        "run_20_over_run_1": run_ratio,
        "run_ms": {"run_1": median(growth[1]), "run_20": median(growth[20])},
        "compaction": {
            "window_tokens": 2_000,
            "sends_with_a_summary": len(with_summary),
            "sends_without": len(without),
            "done_ms_with_summary": median(with_summary) if with_summary else None,
            "done_ms_without": median(without) if without else None,
            "cost_per_summary_ms": (
                round(median(with_summary) - median(without), 3) if with_summary and without else None
            ),
        },
        "targets": {"ttfb_ratio_long_over_short": 1.5, "run_20_over_run_1": 1.2},
        "met": {"ttfb_ratio_long_over_short": ttfb_ratio <= 1.5, "run_20_over_run_1": run_ratio <= 1.2},
        "python": sys.version.split()[0],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
