"""Lambda's asynchronous invocation (`InvocationType=Event`), simulated for the workflow harness.

What a directly started run relies on, as Lambda documents it: the caller gets 202 as soon as
the event is queued; the event runs later, in its own execution environment; an attempt that
fails (an error raised, the sandbox dead) is retried `MaximumRetryAttempts` times (the Plan
function's `EventInvokeConfig` in `template.yaml`), one minute after the first attempt and two
after the second; an attempt that succeeds is not retried; and delivery is at least once, so an
event may run twice, even at the same time. The delays are scaled down here (`RETRY_SCALE`), but
stay longer than the lease the harness configures (`LEASE_TTL_S`), as a minute is longer than a
30-second lease on AWS: a retry must find its dead attempt's lease expired.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

RETRY_DELAYS_S = (60.0, 120.0)
"""Lambda's waits before the second and the third attempt of an async event."""
RETRY_SCALE = 0.06
"""The waits here: 3.6 s and 7.2 s."""
LEASE_TTL_S = 3.0
"""`CHORUS_LEASE_TTL_S` of the harness in direct mode: shorter than the first scaled wait."""
assert RETRY_DELAYS_S[0] * RETRY_SCALE > LEASE_TTL_S


def maximum_retry_attempts(template: Path, function: str = "PlanFunction") -> int:
    """The function's `EventInvokeConfig.MaximumRetryAttempts` as the template deploys it."""
    doc = yaml_parse(template.read_text())
    config = doc["Resources"][function]["Properties"]["EventInvokeConfig"]
    return int(config["MaximumRetryAttempts"])


Attempt = Callable[[dict[str, Any]], bool]
"""Runs one attempt of an event to its end; True if it failed (Lambda retries it)."""


@dataclass
class AsyncInvokes:
    """Queued events of one function, each delivered on a thread of its own, with Lambda's retries."""

    attempt: Attempt
    retries: int
    busy: Callable[[int], None]
    """Counts an event in (+1) or out (-1) of the harness's work in flight, so `settle` waits for its retries."""
    duplicates: int = 0
    """The next `duplicates` events are delivered twice, at the same time (at-least-once delivery)."""
    delivered: list[dict[str, Any]] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered_runs(self) -> list[str]:
        """The run ids of the events queued, in order (an event's duplicates once)."""
        with self.lock:
            return [str(event["run_id"]) for event in self.delivered]

    def submit(self, event: dict[str, Any]) -> None:
        """Queue `event` (the caller already has its 202)."""
        with self.lock:
            copies = 2 if self.duplicates > 0 else 1
            self.duplicates = max(0, self.duplicates - 1)
            self.delivered.append(event)
        for _ in range(copies):
            self.busy(1)
            thread = threading.Thread(target=self._deliver, args=(event,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _deliver(self, event: dict[str, Any]) -> None:
        try:
            for number in range(self.retries + 1):
                if not self.attempt(event):
                    return
                if number < self.retries:
                    threading.Event().wait(RETRY_DELAYS_S[min(number, len(RETRY_DELAYS_S) - 1)] * RETRY_SCALE)
        finally:
            self.busy(-1)
