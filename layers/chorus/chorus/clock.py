"""Wall-clock timestamps as records store them (ISO-8601 UTC with microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_iso() -> str:
    return datetime.now(UTC).isoformat()
