"""Where DynamoDB looks for a run's messages in its group's history: the window's bounds and the row test.

The bounds are `OSK` prefixes, so they must order as positions do (20 digits of nanoseconds): the
floor `RUN_WINDOW_SKEW_NS` below the run's creation, the ceiling as far above its end (an ended run
reads no later run's rows); the row test must match the run id exactly, not as a prefix (`run-1`
is not `run-10`)."""

from __future__ import annotations

from chorus.store.dynamodb_history import RUN_WINDOW_SKEW_NS, HistoryScope, window_ceiling, window_floor
from chorus.store.dynamodb_keys import ORDER_KEY, s

CREATED_NS = 1_767_225_600 * 1_000_000_000 + 123_456_000


def row(position_ns: int, run_id: str) -> dict[str, dict[str, str]]:
    return {ORDER_KEY: s(f"{position_ns:020d}:{run_id}:00001.0000.001:0000#message-1")}


def test_the_floor_is_the_runs_creation_less_the_skew_as_a_position_prefix() -> None:
    floor = window_floor("2026-01-01T00:00:00.123456+00:00")
    assert floor == f"{CREATED_NS - RUN_WINDOW_SKEW_NS:020d}"
    assert window_floor("2026-01-01T00:00:00.123456") == floor, "a naive stamp is UTC, as records stamp"
    assert row(CREATED_NS - RUN_WINDOW_SKEW_NS, "run-1")[ORDER_KEY]["S"] >= floor
    assert row(CREATED_NS - RUN_WINDOW_SKEW_NS - 1, "run-1")[ORDER_KEY]["S"] < floor


def test_a_scope_keeps_the_rows_of_its_run_only() -> None:
    scope = HistoryScope("by_group", "T#t1#GROUP#g1#MESSAGE", "0", "run-1")
    assert scope.keeps(row(CREATED_NS, "run-1"))
    assert not scope.keeps(row(CREATED_NS, "run-10"))
    assert not scope.keeps(row(CREATED_NS, "run"))
    assert not scope.keeps({ORDER_KEY: s("2026-01-01T00:00:00+00:00#message-1")}), "no position, no run"
    assert HistoryScope("by_run", "T#t1#RUN#run-1#MESSAGE").keeps(row(CREATED_NS, "run-2")), "its own partition"


def test_the_ceiling_is_the_runs_end_plus_the_skew_as_a_position_prefix() -> None:
    ceiling = window_ceiling("2026-01-01T00:00:00.123456+00:00")
    assert row(CREATED_NS + RUN_WINDOW_SKEW_NS, "run-1")[ORDER_KEY]["S"] <= ceiling
    assert row(CREATED_NS + RUN_WINDOW_SKEW_NS + 1, "run-1")[ORDER_KEY]["S"] > ceiling
