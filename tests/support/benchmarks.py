"""A benchmark script loaded as a module, for the tests that run a benchmark's scenarios at CI size.

The benchmarks are scripts run from their directory (`python benchmarks/writes.py`), importing
their siblings by bare name; that directory is on `sys.path` only while one of them is imported
here, so no test imports a benchmark by accident.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def load_benchmark(name: str) -> ModuleType:
    """`benchmarks/<name>.py`, imported with its siblings importable."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(str(BENCHMARKS))
