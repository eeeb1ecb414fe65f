"""Wall-clock timestamps as records store them (ISO-8601 UTC with microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def ns_since(stamp: str) -> int:
    """Nanoseconds from a stored timestamp to now (a run's total duration, measured by whoever ends it)."""
    return int((datetime.now(UTC).timestamp() - datetime.fromisoformat(stamp).timestamp()) * 1e9)
