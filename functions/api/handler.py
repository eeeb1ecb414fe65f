"""Buffered entry point for the same `chorus.api:app`: API Gateway, `sam local invoke`, `events/*.json`.

Mangum buffers a streaming response into one body, which is what those
callers expect; live streaming goes through the Lambda Web Adapter (`run.sh`).

Like uvicorn under the adapter, the app starts once per execution environment
(store opened, recovery sweeper started) on one event loop that outlives
invocations; Mangum's per-invocation lifespan would instead cancel, at the end
of each invocation, the runs it started. A Lambda environment is frozen
between invocations, so each invocation also waits for the in-process runs it
started (a `background` stream's last writes after `[DONE]`, a
`/messages/async` run) before it returns; with the Step Functions executor (the
deployed default) background runs are executions of the run workflow instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from mangum import Mangum
from mangum.protocols import LifespanCycle

from chorus import observability, tracing
from chorus.api import app


class BufferedHandler:
    """`handler(event, context)`: the app behind Mangum, started on first use, drained after each call."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self._mangum = Mangum(app, lifespan="off")
        self._lifespan: LifespanCycle | None = None

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        asyncio.set_event_loop(self.loop)
        if self._lifespan is None:
            self._lifespan = LifespanCycle(app, "on")
            self._lifespan.__enter__()
        try:
            result: dict[str, Any] = self._mangum(event, context)
        finally:
            self.loop.run_until_complete(app.state.services.runs.executor.drain())
            if observability.enabled():
                observability.flush_metrics()  # what the drained runs recorded
            tracing.tracer().flush()  # their spans too, before the environment is frozen
        return result

    def close(self) -> None:
        """Shut the app down (tests; Lambda just ends the environment)."""
        if self._lifespan is not None:
            self._lifespan.__exit__(None, None, None)
            self._lifespan = None
        self.loop.close()
        asyncio.set_event_loop(None)


handler = BufferedHandler()
