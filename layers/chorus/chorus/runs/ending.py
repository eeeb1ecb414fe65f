"""What a run record looks like once the run has ended, as one pure function.

A run ends in a single store transaction (`Store.end_log`): its last events,
the `[DONE]` sentinel and the record these functions compute are written
together. So whoever reads `[DONE]` (a streaming client, a resumed one, a
poll of the log) and then asks for the run finds it terminal, with its group
free for the next message: there is no moment in which the log says "done"
and the record still says "running" (a client that sent its next message at
once used to be answered 409 by its own finished run).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from chorus.clock import now_iso
from chorus.store.records import RunRecord
from chorus.vocabulary import FAILED_STOP_REASONS


def status_for(stop_reason: str) -> str:
    if stop_reason == "cancelled":
        return "cancelled"
    return "failed" if stop_reason in FAILED_STOP_REASONS else "completed"


def ending(
    stop_reason: str, retention_s: float, *, ttft_ns: int | None = None, **fields: Any
) -> Callable[[RunRecord], RunRecord]:
    """The change that ends a stored run with `stop_reason` (and `fields`, e.g. usage and timings;
    `ttft_ns` only where the record has none yet).

    A run that is already terminal is returned unchanged, so whoever ended it first (a cancel,
    another worker) keeps its ending, and the change can be re-applied after a conflict.
    """

    def end(run: RunRecord) -> RunRecord:
        if run.is_terminal:
            return run
        return run.model_copy(
            update={
                "ttft_ns": run.ttft_ns if run.ttft_ns is not None else ttft_ns,
                "status": status_for(stop_reason),
                "stop_reason": stop_reason,
                "completed_at": now_iso(),
                "lease_owner": None,
                "lease_expires_at": 0.0,
                "expires_at": time.time() + retention_s,
                **fields,
            }
        )

    return end
