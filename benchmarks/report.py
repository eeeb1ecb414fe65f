"""One report: run every benchmark (or the soak campaigns), collect their JSON, print a table, save it.

`make bench` runs the benchmarks, each in its own process (a fresh server,
no state shared): stream overhead vs a bare SSE endpoint, fan-out scaling,
resume replay (SQLite over HTTP and in-process, DynamoDB on moto), store
append/replay, store writes per run, Chorus against the floor server
(`floor.py`: TTFB and end to end, the same three OpenAI calls re-streamed), cold import time of the Lambda entry
modules, the per-call cost of the tool sandbox against a plain child
process, the 200-stream load (TTFB, throughput, memory per stream, every
stream checked against its log), and what a run costs on AWS (`cost.py`:
counts on moto times list prices, per 1,000 runs), and the API process's
peak memory through foreground runs against `ApiMemorySize`, and the workflow functions' through
background runs against theirs (`memory.py`). `make soak` runs the full-size campaigns
through pytest: the fault campaign (1,200 seeded cases) and the schemathesis
fuzz (60 examples per operation). Either writes one JSON document, with the
machine and the time, to `benchmarks/results/latest.json` (or `soak.json`)
and prints a table of the headline figures with each target as pass/fail.
Targets are ratios and differences measured in the same run, never
absolute times asserted in tests.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BENCHMARKS = [
    "stream_overhead",
    "fanout",
    "resume",
    "store",
    "writes",
    "importtime",
    "coldstart",
    "sandbox",
    "tracing",
    "load",
    "cost",
    "memory",
    "history",
    "floor",
]


PEAK_OVER_MEMORY = 0.6
"""Largest measured peak RSS a function's memory size may hold: the peak is of a bounded workload
that levels off (`memory.py`), and 40% above it absorbs the runtime, the Web Adapter and an unusual
request; Lambda recovers a run whose worker it kills, but the stream of it breaks."""
COST_TARGETS = {
    "foreground round robin 3 x 20 tokens": 0.05,
    "background round robin 3 x 20 tokens": 0.05,
}
"""Dollars per 1,000 runs (2 s a model call, tokens excluded) each of these runs is meant to stay under."""


def machine() -> dict[str, Any]:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), platform.processor())
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cores": os.cpu_count(),
        "cpu": cpu,
        "load_average_at_start": list(os.getloadavg()),
    }


def run_benchmark(name: str) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(HERE / f"{name}.py")], capture_output=True, text=True, cwd=ROOT, check=False
    )
    elapsed = round(time.perf_counter() - started, 1)
    if done.returncode != 0:
        return {"benchmark": name, "error": done.stderr[-2000:], "seconds": elapsed}
    result: dict[str, Any] = json.loads(done.stdout)
    result["seconds"] = elapsed
    return result


def run_pytest(target: str, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:warnings", target],
        capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}, check=False,
    )  # fmt: skip
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-500:]
    counts = {f"tests_{k}": int(v) for v, k in re.findall(r"(\d+) (passed|failed|error|errors)", summary)}
    result: dict[str, Any] = {"ok": done.returncode == 0, "summary": summary, **counts}
    if done.returncode != 0:
        result["failures"] = done.stdout[-6000:]  # pytest's report of what failed, to reproduce it
    result["seconds"] = round(time.perf_counter() - started)
    return result


def bench() -> dict[str, Any]:
    results = {}
    for name in BENCHMARKS:
        print(f"running {name}…", file=sys.stderr, flush=True)
        results[name] = run_benchmark(name)
    return results


def soak(cases: int, examples: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "campaign.json"
        print(f"running the fault campaign ({cases} cases)…", file=sys.stderr, flush=True)
        campaign = run_pytest(
            "tests/faults/test_campaign.py", {"CHORUS_FAULT_CASES": str(cases), "CHORUS_CAMPAIGN_REPORT": str(path)}
        )
        campaign["counts"] = json.loads(path.read_text()) if path.exists() else None
    print(f"running the fuzz ({examples} examples per operation)…", file=sys.stderr, flush=True)
    fuzz = run_pytest("tests/fuzz", {"CHORUS_FUZZ_EXAMPLES": str(examples)})
    fuzz["examples_per_operation"] = examples
    fuzz["checks"] = ["not_a_server_error", "response_schema_conformance"]
    return {"fault_campaign": campaign, "fuzz": fuzz}


def _get(data: dict[str, Any], *path: str) -> Any:
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(figure, value, target, verdict) for the table."""

    def verdict(ok: bool | None) -> str:
        return "-" if ok is None else ("pass" if ok else "FAIL")

    out = []
    so = results.get("stream_overhead", {})
    if "per_token_overhead_us" in so:
        out.append(("stream overhead per token vs bare SSE", f"{so['per_token_overhead_us']} µs", "<= 30 µs",
                    verdict(so["per_token_overhead_us"] <= 30 and so["verified"])))  # fmt: skip
        out.append(("TTFB overhead vs bare SSE", f"{so['ttfb_overhead_ms']} ms", "<= 5 ms",
                    verdict(so["ttfb_overhead_ms"] <= 5)))  # fmt: skip
    fo = results.get("fanout", {})
    if "ratio_32_over_1" in fo:
        out.append(("fan-out 32 workers / 1 worker", f"{fo['ratio_32_over_1']}x", "<= 1.5x",
                    verdict(fo["met"] and fo["verified"])))  # fmt: skip
    re_ = results.get("resume", {})
    if "http_replay_ms_median" in re_:
        out.append(("resume 10k events, SQLite over HTTP", f"{re_['http_replay_ms_median']} ms "
                    f"({re_['http_events_per_s']} ev/s)", "<= 100 ms", verdict(re_["target_met"])))  # fmt: skip
        out.append(("resume 10k events, DynamoDB (moto) in-process", f"{re_['dynamodb_moto_replay_ms_median']} ms "
                    f"({re_['dynamodb_moto_events_per_s']} ev/s)", "", "-"))  # fmt: skip
    wr = results.get("writes", {})
    for label, scenario in (_get(wr, "scenarios") or {}).items():
        d = scenario["dynamodb_moto"]
        out.append((f"store writes per run, {label}", f"{d['store_writes']} ({d['dynamodb_write_requests']} DynamoDB)",
                    f"<= {d['bound']}", verdict(d["store_writes"] <= d["bound"])))  # fmt: skip
    im = results.get("importtime", {})
    for name, module in (_get(im, "modules") or {}).items():
        api = name == "functions/api/handler.py"
        out.append((f"cold import {name}", f"{module['median_ms']} ms", "<= 300 ms" if api else "",
                    verdict(module["median_ms"] <= 300) if api else "-"))  # fmt: skip
    if _get(im, "api_handler_own_ms") is not None:
        out.append(("cold import functions/api/handler.py above the floor",
                    f"{im['api_handler_own_ms']} ms ({im['api_handler_over_floor']}x the floor)", "<= 1.25x",
                    verdict(bool(im.get("over_floor_met")))))  # fmt: skip
    cs = results.get("coldstart", {})
    if "cold" in cs:
        figures = f"{cs['cold_init_and_first_request_ms']} / {cs['restored_first_request_ms']} ms"
        out.append(("API cold init + first request / restored from a SnapStart snapshot", figures, "", "-"))
    sb = results.get("sandbox", {})
    if "executors" in sb:
        e = sb["executors"]
        out.append(("tool call median: sandbox / subprocess",
                    f"{e['sandbox']['median_ms']} / {e['subprocess']['median_ms']} ms "
                    f"(+{sb['sandbox_overhead_ms']} ms, {sb['ratio_sandbox_over_subprocess']}x)", "", "-"))  # fmt: skip
    elif "skipped" in sb:
        out.append(("tool call sandbox overhead", "skipped: " + sb["skipped"], "", "-"))
    tr = results.get("tracing", {})
    if "on_over_off" in tr:
        out.append(("tracing on / off per run", f"{tr['on_ms_median']} / {tr['off_ms_median']} ms "
                    f"({tr['on_over_off']}x, {tr['overhead_per_step_us']} µs per step)", "", "-"))  # fmt: skip
    lo = results.get("load", {})
    if "timing" in lo:
        t, m = lo["timing"], lo.get("memory", {})
        streams = lo["scenario"]["streams"]
        out.append((f"load {streams} streams: TTFB p50 / p99", f"{t['ttfb_ms_p50']} / {t['ttfb_ms_p99']} ms", "", "-"))
        out.append((f"load {streams} streams: throughput", f"{t['runs_per_s']} runs/s, {t['events_per_s']} ev/s",
                    "", "-"))  # fmt: skip
        out.append((f"load {streams} streams: lost / duplicated / not terminal",
                    f"{lo['lost']} / {lo['duplicated']} / {lo['runs_not_terminal']} of {lo['events_checked']} events",
                    "0 / 0 / 0", verdict(lo["verified"])))  # fmt: skip
        if m:
            out.append(("memory per concurrent stream", f"{m['per_stream_kib']} KiB", "", "-"))
    hi = results.get("history", {})
    if "ttfb_ratio_long_over_short" in hi:
        out.append(("TTFB, 10,000-message group / short group", f"{hi['ttfb_ratio_long_over_short']}x", "<= 1.5x",
                    verdict(hi["met"]["ttfb_ratio_long_over_short"])))  # fmt: skip
        out.append(("20th run on one group / 1st", f"{hi['run_20_over_run_1']}x", "<= 1.2x",
                    verdict(hi["met"]["run_20_over_run_1"])))  # fmt: skip
        out.append(("compaction cost per summary", f"{hi['compaction']['cost_per_summary_ms']} ms", "", "-"))
    fl = results.get("floor", {})
    if "end_to_end_over_floor" in fl:
        t, e = fl["ttfb_ms"], fl["total_ms"]
        out.append(("end to end, Chorus / floor (3 x 20 tokens, OpenAI fake)",
                    f"{fl['end_to_end_over_floor']}x ({e['chorus_stream_tokens']} / {e['floor']} ms)", "<= 1.15x",
                    verdict(fl["met"]["end_to_end_over_floor"] and fl["verified"])))  # fmt: skip
        out.append(("TTFB, Chorus - floor", f"{fl['ttfb_over_floor_ms']} ms ({t['chorus_stream_tokens']} / "
                    f"{t['floor']} ms)", "<= 3 ms", verdict(fl["met"]["ttfb_over_floor_ms"])))  # fmt: skip
        out.append(("stream_tokens=false / token streaming, end to end", f"{fl['stream_steps_over_stream_tokens']}x",
                    f"<= {fl['targets']['stream_steps_over_stream_tokens']}x",
                    verdict(fl["met"]["stream_steps_over_stream_tokens"])))  # fmt: skip
        out.append(("non-streaming send / token streaming, end to end", f"{fl['non_streaming_over_stream_tokens']}x",
                    f"<= {fl['targets']['non_streaming_over_stream_tokens']}x",
                    verdict(fl["met"]["non_streaming_over_stream_tokens"])))  # fmt: skip
    me = results.get("memory", {})
    if "api_peak_mb" in me:
        out.append((f"API process peak RSS, {me['runs']} foreground runs / ApiMemorySize",
                    f"{me['api_peak_mb']} / {me['api_memory_size_mb']} MB ({me['peak_over_configured']}x)",
                    f"<= {PEAK_OVER_MEMORY}x", verdict(me["peak_over_configured"] <= PEAK_OVER_MEMORY)))  # fmt: skip
    for task, fn in (_get(me, "workflow", "functions") or {}).items():
        out.append((f"{task.capitalize()} function peak RSS, background runs / its memory",
                    f"{fn['peak_mb']} / {fn['memory_size_mb']} MB ({fn['peak_over_configured']}x)",
                    f"<= {PEAK_OVER_MEMORY}x", verdict(fn["peak_over_configured"] <= PEAK_OVER_MEMORY)))  # fmt: skip
    for scenario in _get(results, "cost", "scenarios") or []:
        name, dollars = scenario["scenario"]["name"], scenario["dollars_per_1000_runs"]
        target = COST_TARGETS.get(name)
        met = verdict(dollars["total"] <= target) if target else "-"
        out.append((f"AWS $ per 1,000 runs: {name}", f"{dollars['total']:.4f}", f"<= {target}" if target else "", met))
    for name, data in results.items():
        if isinstance(data, dict) and "error" in data:
            out.append((name, "error", "", "FAIL"))
    fc = _get(results, "fault_campaign", "counts")
    if fc:
        out.append(
            ("fault campaign runs (cases)", f"{fc['runs']} ({fc['cases']})", ">= 1000", verdict(fc["cases"] >= 1000))
        )
        out.append(("fault campaign events checked", str(fc["events_checked"]), "", "-"))
        out.append(("fault campaign lost / duplicated / not terminal",
                    f"{fc['lost']} / {fc['duplicated']} / {fc['runs_not_terminal']}", "0 / 0 / 0",
                    verdict(fc["lost"] == fc["duplicated"] == fc["runs_not_terminal"] == 0
                            and results["fault_campaign"]["ok"])))  # fmt: skip
    fz = results.get("fuzz")
    if fz:
        out.append((f"fuzz, {fz['examples_per_operation']} examples per operation", fz["summary"],
                    "0 5xx, schema ok", verdict(fz["ok"])))  # fmt: skip
    return out


def table(lines: list[tuple[str, str, str, str]]) -> str:
    widths = [max(len(r[i]) for r in [("figure", "value", "target", ""), *lines]) for i in range(4)]
    fmt = "  ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(fmt.format(*r) for r in [("figure", "value", "target", ""), *lines])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--soak", action="store_true", help="the full-size fault campaign and fuzz instead")
    parser.add_argument("--cases", type=int, default=1200)
    parser.add_argument("--examples", type=int, default=60)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.UTC)
    results = soak(args.cases, args.examples) if args.soak else bench()
    lines = rows(results)
    document = {
        "report": "soak" if args.soak else "bench",
        "started_at": started.isoformat(timespec="seconds"),
        "seconds": round((datetime.datetime.now(datetime.UTC) - started).total_seconds()),
        "machine": machine(),
        "summary": [{"figure": f, "value": v, "target": t, "verdict": d} for f, v, t, d in lines],
        "results": results,
    }
    out = args.out or HERE / "results" / ("soak.json" if args.soak else "latest.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))
    print()
    print(table(lines))
    print(f"\nwritten to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}")
    if any(d == "FAIL" for *_, d in lines):
        print("some targets were missed (see FAIL above)", file=sys.stderr)


if __name__ == "__main__":
    main()
