"""A run's options, read from its stored record as one typed model with the defaults in one place.

The record keeps `options` as the plain JSON object it always stored (DynamoDB and SQLite
rows of older runs must still read), so writers keep writing those keys; readers go
through `RunOptions.of(run)` instead of picking keys out of the dict with their own
defaults.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, field_validator

from chorus.schemas.requests import Approval
from chorus.store.records import PendingApproval, RunRecord

DEFAULT_MAX_STEPS = 50
"""Model steps one agent may take in a turn when the request does not say."""


class Recovery(BaseModel):
    """How often workers died on the run's unfinished step (see `chorus.runs.attempts`)."""

    model_config = ConfigDict(frozen=True)

    steps: int | None = None
    """Committed steps when the last worker died: which step it was attempting."""
    deaths: int = 0

    @field_validator("deaths", mode="before")
    @classmethod
    def _none_is_zero(cls, value: Any) -> Any:
        return value or 0


class RunOptions(BaseModel):
    """How a run streams and how far it may go, as stored in `RunRecord.options`."""

    model_config = ConfigDict(frozen=True)

    stream_tokens: bool = False
    max_steps: int = DEFAULT_MAX_STEPS
    include_return_message_types: list[str] | None = None
    turn_number: int = 1
    """The group's turn this run counted (paces sleeptime agents the same way after a re-drive)."""
    approvals: list[Approval] = []
    """The request's answers to a paused turn's tool calls (stored as `ApprovalCreate.approvals` dumps)."""
    continues: PendingApproval | None = None
    """The paused turn this run resumes, if it answers one."""
    recovery: Recovery | None = None
    multitask_strategy: str = "reject"
    """What the send asked for if its group was busy (see `chorus.runs.multitask`)."""
    queued: bool = False
    """The run waits in its group's line: created, not yet started by anyone."""
    in_execution: bool = False
    """The run belongs to a Step Functions execution: a directly started run handed over to one (see
    `chorus.workflow.direct`). No worker takes its lease again: the execution owns it."""
    rolls_back: str | None = None
    """The run a `rollback` send interrupted: its messages leave history before this run starts."""

    @field_validator("max_steps", "turn_number", mode="before")
    @classmethod
    def _unset_is_default(cls, value: Any, info: Any) -> Any:
        return value or cls.model_fields[info.field_name].default

    @field_validator("stream_tokens", mode="before")
    @classmethod
    def _none_is_false(cls, value: Any) -> Any:
        return bool(value)

    @field_validator("approvals", mode="before")
    @classmethod
    def _none_is_empty(cls, value: Any) -> Any:
        return value or []

    @classmethod
    def of(cls, run: RunRecord) -> RunOptions:
        return cls.model_validate(run.options)
