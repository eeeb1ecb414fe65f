"""Cold import time of each Lambda entry module, measured with `python -X importtime` in fresh processes.

Discovers `functions/*/handler.py` and `functions/*/app.py` (new functions are
picked up without editing this file) plus `chorus.api`, the module uvicorn
imports under the Lambda Web Adapter (`functions/api/run.sh`). Each is
imported `--rounds` times, round by round with the others (so each sees the
same load), in a new interpreter with a Lambda-like
environment (`AWS_LAMBDA_FUNCTION_NAME` set, so the app is built as on Lambda,
its Powertools Logger set up when it starts; region and dummy credentials;
`CHORUS_STORE=dynamodb`); bytecode is
already compiled, as in a deployed layer. Reported: the median cumulative
import time of the module (the `-X importtime` line of the module itself)
and its heaviest direct and indirect imports. Target: the API handler
(`functions/api/handler.py`) <= 300 ms.

Also measured, in the same run: the floor that no code of ours can lower,
`import fastapi, mangum` (the framework and the adapter the API handler is
built on), and the API handler's own share above it (`api_handler_own_ms`,
`api_handler_over_floor`). Target: at most `OVER_FLOOR_TARGET` (1.25 times) the
floor; the app's route modules and run machinery load on first use
(`chorus.api.lazy_routes`), which `benchmarks/coldstart.py` times.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 300
OVER_FLOOR_TARGET = 1.25
FLOOR = "fastapi, mangum (the floor: the framework and adapter alone)"
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "chorus-bench",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "CHORUS_STORE": "dynamodb",
    "POWERTOOLS_SERVICE_NAME": "chorus",
}


def entry_points() -> dict[str, tuple[Path | None, str]]:
    """name -> (directory to put on sys.path, module to import)."""
    found: dict[str, tuple[Path | None, str]] = {}
    for path in sorted((ROOT / "functions").glob("*/*.py")):
        if path.name in ("handler.py", "app.py"):
            found[f"functions/{path.parent.name}/{path.name}"] = (path.parent, path.stem)
    found["chorus.api (uvicorn under the Web Adapter)"] = (None, "chorus.api")
    found[FLOOR] = (None, "fastapi, mangum")
    return found


def import_once(directory: Path | None, module: str) -> tuple[int, list[tuple[int, str]]]:
    """(cumulative µs of `module`, [(cumulative µs, name)] of every import) from one fresh interpreter.

    `module` may list several (`"fastapi, mangum"`): their cumulative times are summed.
    """
    code = f"import sys; sys.path.insert(0, {str(directory)!r})\nimport {module}" if directory else f"import {module}"
    env = {**os.environ, **LAMBDA_ENV}
    env.pop("AWS_ENDPOINT_URL", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # any non-empty value, "0" included, stops .pyc writing
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code], env=env, capture_output=True, text=True, check=True
    )
    rows: list[tuple[int, str]] = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = (part.strip() for part in line.removeprefix("import time:").split("|"))
        rows.append((int(cumulative), name))
    own = sum(next(us for us, name in reversed(rows) if name == one.strip()) for one in module.split(","))
    return own, rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    results: dict[str, Any] = {}
    entries = entry_points()
    times: dict[str, list[int]] = {name: [] for name in entries}
    heaviest: dict[str, dict[str, int]] = {name: {} for name in entries}
    for directory, module in entries.values():
        import_once(directory, module)  # compile bytecode once, as a deployed layer ships it
    for _ in range(args.rounds):  # round by round, so every module and the floor see the same load
        for name, (directory, module) in entries.items():
            own, rows = import_once(directory, module)
            times[name].append(own)
            for us, imported in rows:
                top = imported.strip().split(".")[0]
                heaviest[name][top] = max(heaviest[name].get(top, 0), us)
    for name in entries:
        top_six = sorted(heaviest[name].items(), key=lambda kv: -kv[1])[:6]
        results[name] = {
            "median_ms": round(statistics.median(times[name]) / 1000, 1),
            "min_ms": round(min(times[name]) / 1000, 1),
            "heaviest_ms": {k: round(v / 1000, 1) for k, v in top_six},
        }
    api = results.get("functions/api/handler.py", {}).get("median_ms")
    floor = results[FLOOR]["median_ms"]
    report = {
        "benchmark": "importtime",
        "rounds": args.rounds,
        "environment": "Lambda-like (AWS_LAMBDA_FUNCTION_NAME set: the app built as on Lambda), bytecode compiled",
        "modules": results,
        "api_handler_ms": api,
        "target_ms": TARGET_MS,
        "met": api is not None and api <= TARGET_MS,
        "floor_ms": floor,
        "floor_met": floor <= TARGET_MS,
        "api_handler_own_ms": round(api - floor, 1) if api is not None else None,
        "api_handler_over_floor": round(api / floor, 2) if api is not None else None,
        "api_handler_over_floor_of_minima": (
            round(results["functions/api/handler.py"]["min_ms"] / results[FLOOR]["min_ms"], 2) if api else None
        ),
        "over_floor_target": OVER_FLOOR_TARGET,
        "over_floor_met": api is not None and api / floor <= OVER_FLOOR_TARGET,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
