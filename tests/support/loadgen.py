"""Many concurrent streaming group runs against one real Chorus server, every stream checked against its log.

Used by `load.py` (the full size, with timings and memory) and by
`tests/e2e/test_load.py` (a CI-sized run, counts only). Each stream is its
own group (one active run per group) of the same scripted agents, which
answer with a per-token delay so that all streams are open at once. When
every stream has ended, each run must be terminal and what its client
received must equal the run's stored log (read from the server's SQLite
file, not over HTTP): no event lost, duplicated, reordered or changed.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from chorus.store.sqlite import SQLiteStore
from support.streamcheck import Received, StreamCheck, check, parse_frames

TENANT = "default"


@dataclass(frozen=True, slots=True)
class Scenario:
    streams: int = 200
    agents: int = 2
    tokens: int = 40
    delay_s: float = 0.02
    timeout_s: float = 120.0
    """Bound on the whole load phase; a stream still open then counts as not terminal."""


@dataclass(slots=True)
class StreamResult:
    run_id: str | None = None
    ttfb_s: float = 0.0
    total_s: float = 0.0
    status: int = 0
    received: Received = field(default_factory=Received)


def rss_kib(pid: int) -> int:
    """Resident set size of a process (Linux `/proc/<pid>/status` `VmRSS`), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


async def _setup(client: httpx.AsyncClient, scenario: Scenario) -> list[str]:
    script = {"scripted": {"tokens": scenario.tokens, "delay_s": scenario.delay_s}}
    agents = []
    for i in range(scenario.agents):
        response = await client.post("/v1/agents", json={"name": f"Load{i}", "metadata": script})
        response.raise_for_status()
        agents.append(response.json()["id"])
    groups = []
    for _ in range(scenario.streams):
        response = await client.post("/v1/groups", json={"agent_ids": agents})
        response.raise_for_status()
        groups.append(response.json()["id"])
    return groups


async def _stream(client: httpx.AsyncClient, group_id: str, opened: asyncio.Event | None) -> StreamResult:
    body = {"input": "go", "stream_tokens": True, "include_pings": False}
    result = StreamResult()
    started = time.perf_counter()
    chunks: list[bytes] = []
    async with client.stream("POST", f"/v1/groups/{group_id}/messages/stream", json=body) as response:
        result.status = response.status_code
        async for chunk in response.aiter_raw():
            if not chunks:
                result.ttfb_s = time.perf_counter() - started
                if opened is not None:
                    opened.set()
            chunks.append(chunk)
    result.total_s = time.perf_counter() - started
    result.received = parse_frames(b"".join(chunks))
    if result.received.events:
        first = result.received.events[0][1]
        result.run_id = first.split('"run_id":"', 1)[1].split('"', 1)[0] if '"run_id":"' in first else None
    return result


async def _terminal(store: SQLiteStore, run_id: str, deadline: float) -> bool:
    while time.monotonic() < deadline:
        if (await store.get_run(TENANT, run_id)).is_terminal:
            return True
        await asyncio.sleep(0.05)
    return False


async def run_load(url: str, db_path: Path, scenario: Scenario, *, pid: int | None = None) -> dict[str, Any]:
    """Run the scenario; returns counts (always) and timings and memory (when `pid` is given)."""
    limits = httpx.Limits(max_connections=scenario.streams + 8, max_keepalive_connections=scenario.streams + 8)
    async with httpx.AsyncClient(base_url=url, timeout=scenario.timeout_s, limits=limits) as client:
        groups = await _setup(client, scenario)
        warm = await _stream(client, groups[0], None)  # imports, caches, one connection: off the books
        assert warm.received.done, "the warm-up stream did not finish"
        await asyncio.sleep(0.2)
        idle_kib = rss_kib(pid) if pid else None
        opened = [asyncio.Event() for _ in groups]
        peak_kib = idle_kib or 0

        async def sample() -> None:
            nonlocal peak_kib
            while pid:
                peak_kib = max(peak_kib, rss_kib(pid))
                await asyncio.sleep(0.02)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        tasks = [asyncio.create_task(_stream(client, g, e)) for g, e in zip(groups, opened, strict=True)]
        all_open_kib: int | None = None
        everyone = asyncio.create_task(_all_set(opened))
        await asyncio.wait([everyone, *tasks], timeout=scenario.timeout_s, return_when=asyncio.FIRST_COMPLETED)
        if pid and everyone.done():
            all_open_kib = rss_kib(pid)  # every stream has had its first byte, none has ended yet
        everyone.cancel()
        remaining = max(0.0, scenario.timeout_s - (time.perf_counter() - started))
        _, pending = await asyncio.wait(tasks, timeout=remaining)
        wall_s = time.perf_counter() - started
        sampler.cancel()
        for task in pending:
            task.cancel()
        await asyncio.gather(*tasks, sampler, return_exceptions=True)
        results = [t.result() for t in tasks if not t.cancelled() and t.exception() is None]

    store = SQLiteStore(db_path)
    await store.open()
    try:
        totals = StreamCheck()
        not_terminal = len(groups) - len(results)
        deadline = time.monotonic() + 30
        for result in results:
            if result.status != 200 or result.run_id is None:
                not_terminal += 1
                continue
            if not await _terminal(store, result.run_id, deadline):
                not_terminal += 1
            log = await store.read_events(TENANT, result.run_id, 0, 1_000_000)
            totals.add(check(result.received, log, complete=True))
    finally:
        await store.close()

    ttfb = sorted(r.ttfb_s for r in results)
    events = sum(len(r.received.events) for r in results)
    report: dict[str, Any] = {
        "scenario": {
            "streams": scenario.streams,
            "agents_per_group": scenario.agents,
            "tokens_per_agent": scenario.tokens,
            "token_delay_ms": scenario.delay_s * 1000,
        },
        **totals.as_dict(),
        "runs_started": len(groups),
        "runs_not_terminal": not_terminal,
    }
    if ttfb:
        report["timing"] = {
            "wall_s": round(wall_s, 3),
            "ttfb_ms_p50": round(_percentile(ttfb, 50) * 1000, 2),
            "ttfb_ms_p99": round(_percentile(ttfb, 99) * 1000, 2),
            "ttfb_ms_max": round(ttfb[-1] * 1000, 2),
            "stream_s_p50": round(statistics.median(r.total_s for r in results), 3),
            "runs_per_s": round(len(results) / wall_s, 2),
            "events_per_s": round(events / wall_s),
            "ideal_stream_s": round(scenario.agents * scenario.tokens * scenario.delay_s, 3),
        }
    if pid and idle_kib is not None:
        busy = all_open_kib or peak_kib
        report["memory"] = {
            "idle_rss_kib": idle_kib,
            "all_open_rss_kib": all_open_kib,
            "peak_rss_kib": peak_kib,
            "per_stream_kib": round((busy - idle_kib) / scenario.streams, 1),
            "per_stream_kib_at_peak": round((peak_kib - idle_kib) / scenario.streams, 1),
        }
    return report


async def _all_set(events: list[asyncio.Event]) -> None:
    for event in events:
        await event.wait()


def _percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    rank = max(1, min(len(sorted_values), round(pct / 100 * len(sorted_values) + 0.5)))
    return sorted_values[rank - 1]
