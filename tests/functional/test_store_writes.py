"""What one run costs in store writes on SQLite, the benchmark's scenarios in CI (counts, never time).

`benchmarks/writes.py` states the bound `steps + ceil(tokens / 64) + 8` and
measures it on both adapters; this runs its SQLite half inside `make test`.
SQLite writes on the event loop, so a log writer's batching shows here
exactly: two flushers started on one log (a bug this caught) raced each
other for every batch and cost a dozen extra writes per 600 tokens.
"""

from __future__ import annotations

import pytest

from support.benchmarks import load_benchmark

writes = load_benchmark("writes")


@pytest.mark.parametrize("manager", ["round_robin", "supervisor"])
async def test_a_run_costs_steps_plus_tokens_over_64_writes(manager: str) -> None:
    result = await writes.sqlite(manager)
    assert result["by_method"]["end_log"] == 1 and result["by_method"]["put_run"] == 1
    assert result["store_writes"] <= result["bound"], result
