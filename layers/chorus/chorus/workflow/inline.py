"""Inline turns: a Plan task that runs a run's sequential turns itself, and its Finish.

Every state a Standard execution enters is billed ($0.025 per 1,000), and a
round through the Map costs four (Plan, the Choice, the Map, its Step), so a
3-agent round robin took 16 transitions and 8 Lambda invocations. Most
rounds are one call (round robin, dynamic, sleeptime, a supervisor's own
turns); the Map only pays off for a parallel round. So the Plan task, while
its time budget lasts, runs each one-call round itself with the Step task's
own code (`Workflow.step`: the same live log, commits and cancel heartbeat),
plans again, and when the run is over runs Finish too: the execution is then
Plan, the Choice and Done (3 transitions, 1 invocation).

What stays with the definition: a parallel round goes to the Map; a turn
that fails with a retryable model error goes to the Map as it is, to be
retried with the Step's backoff (the Step marks this attempt's output
abandoned, as after any dead attempt); a turn started after the budget is
the Map's. Anything else a turn raises fails the Plan task as it would have
failed the Step: caught into Finish, or retried when the storage was
unavailable or the worker died (Plan retries those; a retried Plan re-reads
the run and goes on from its last commit).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from chorus.errors import ModelError
from chorus.workflow.state import WorkflowState
from chorus.workflow.tasks import Workflow

logger = logging.getLogger(__name__)

DONE = "done"
"""The action of a Plan that also finished the run: the definition's Choice goes to Done."""


async def plan_inline(
    workflow: Workflow, raw: dict[str, Any], budget_s: float, clock: Callable[[], float] = time.monotonic
) -> dict[str, Any]:
    """Plan, then run one-call rounds and plan again while `budget_s` lasts; finish a finished run."""
    started = clock()
    history_events = WorkflowState.model_validate(raw).history_events
    out = await workflow.plan(raw)
    while out["action"] == "steps" and len(out["steps"]) == 1 and clock() - started < budget_s:
        try:
            await workflow.step(out["steps"][0])
        except ModelError as exc:
            if not exc.retryable:
                raise
            logger.warning("run %s: a turn run inline failed (%s); the Map retries it", out["run_id"], exc.detail)
            return out
        # the round did not go through the Map: it used none of the execution's history
        out = await workflow.plan({**out, "history_events": history_events})
    if out["action"] == "finish":
        await workflow.finish(out)
        return {**out, "action": DONE}
    return out
