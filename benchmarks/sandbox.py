"""Per-call latency of a custom tool under the `sandbox` executor (bubblewrap) against `subprocess`.

The same trivial tool (`def echo(x): return x`) is called `--calls` times
under each executor, interleaved call by call so both see the same machine
load; reported are the median and p90 per executor, the sandbox's overhead
per call (difference of medians) and the ratio of medians, measured in this
one run. Where bubblewrap cannot run, the report says why and measures
nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from typing import Any

from chorus.tools.bubblewrap import BubblewrapExecutor, SandboxLimits, bubblewrap_problem
from chorus.tools.execution import ToolCall, ToolExecutor
from chorus.tools.executors import SubprocessExecutor

TOOL = "def echo(x):\n    return x\n"


async def once(executor: ToolExecutor) -> float:
    started = time.perf_counter()
    result = await executor.run(ToolCall("bench", TOOL, "echo", {"x": "hi"}))
    elapsed = time.perf_counter() - started
    if (result.status, result.value) != ("success", "hi"):
        raise RuntimeError(f"{executor.name}: {result.value}")
    return elapsed * 1000


async def measure(calls: int, warmup: int) -> dict[str, Any]:
    executors: dict[str, ToolExecutor] = {
        "subprocess": SubprocessExecutor(),
        "sandbox": BubblewrapExecutor(SandboxLimits()),
    }
    for _ in range(warmup):
        for executor in executors.values():
            await once(executor)
    samples: dict[str, list[float]] = {name: [] for name in executors}
    for _ in range(calls):
        for name, executor in executors.items():
            samples[name].append(await once(executor))
    per = {
        name: {
            "median_ms": round(statistics.median(values), 2),
            "p90_ms": round(statistics.quantiles(values, n=10)[-1], 2),
        }
        for name, values in samples.items()
    }
    sandbox, plain = per["sandbox"]["median_ms"], per["subprocess"]["median_ms"]
    return {
        "calls_each": calls,
        "executors": per,
        "sandbox_overhead_ms": round(sandbox - plain, 2),
        "ratio_sandbox_over_subprocess": round(sandbox / plain, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=5)
    args = parser.parse_args()
    problem = bubblewrap_problem()
    result: dict[str, Any] = {"benchmark": "sandbox"}
    if problem is not None:
        result["skipped"] = problem
    else:
        result.update(asyncio.run(measure(args.calls, args.warmup)))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
