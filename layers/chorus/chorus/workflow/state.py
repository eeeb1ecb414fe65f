"""The JSON a run's workflow passes between its states, and its history budget.

Pure: validated shapes only. An execution's input is a `WorkflowInput`;
Plan returns it extended into a `WorkflowState` (what to do next); the Map
state hands each `StepInput` to a Step task; Finish reads the state, plus
the `error` a Catch added.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

HISTORY_LIMIT = 25_000
"""Step Functions' hard limit of events in one execution's history."""
DEFAULT_HISTORY_BUDGET = 20_000
"""Events an execution may use before the run continues in a new one (a margin for retries)."""


def round_cost(calls: int) -> int:
    """History events one round adds: Plan (5), Choice (2), the Map (4) and, per call, an
    iteration (2) around a Step task (5). Retries add 2 each; the budget's margin absorbs them."""
    return 11 + 7 * calls


def execution_name(run_id: str, generation: int) -> str:
    """The run's first execution is named after it; its continuations `run_id-2`, `run_id-3`, …"""
    return run_id if generation <= 1 else f"{run_id}-{generation}"


class _Shape(BaseModel):
    model_config = ConfigDict(extra="ignore", defer_build=True)

    @model_serializer(mode="wrap")
    def _untraced(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Without tracing, a task's input has no `traceparent`: the payloads stay as they were."""
        data: dict[str, Any] = handler(self)
        if data.get("traceparent", "") is None:
            del data["traceparent"]
        return data


class WorkflowInput(_Shape):
    tenant_id: str
    run_id: str
    generation: int = Field(default=1, ge=1)
    history_events: int = Field(default=0, ge=0)
    """History events this execution has used so far (estimated by `round_cost`)."""
    history_budget: int = Field(default=DEFAULT_HISTORY_BUDGET, ge=1, le=HISTORY_LIMIT)
    traceparent: str | None = Field(default=None, max_length=55)
    """The run's root span (`RunRecord.traceparent`), so each task's span joins the run's trace."""


class StepInput(_Shape):
    tenant_id: str
    run_id: str
    round: int = Field(ge=1)
    call: int = Field(ge=0)
    calls: int = Field(ge=1)
    live: bool
    """This call writes the run's log as it goes; the others stage their output for it, in plan order."""
    traceparent: str | None = Field(default=None, max_length=55)


class TaskError(_Shape):
    """What a Catch puts at `$.error`: the error name and the Lambda's error payload."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    error: str = Field(alias="Error")
    cause: str = Field(default="", alias="Cause")


class WorkflowState(WorkflowInput):
    action: Literal["steps", "finish", "continued"] = "finish"
    round: int = 0
    steps: list[StepInput] = Field(default_factory=list)
    max_concurrency: int = Field(default=50, ge=0)
    """The Map's bound on Steps running at once (`CHORUS_FANOUT_CONCURRENCY` of the Plan function)."""
    stop_reason: str | None = None
    children: list[str] = Field(default_factory=list)
    """Background runs (sleeptime agents) the run started, for its `run_ids`."""
    error: TaskError | None = None

    def out(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"error"})
