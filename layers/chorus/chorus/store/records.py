"""What the store keeps. Plain pydantic records, serialised as JSON by every adapter.

Records carry `tenant_id` so that every adapter scopes every read and write by
tenant (invariant 6): an object of another tenant is simply not found.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

RunStatus = Literal["created", "running", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class Record(BaseModel):
    model_config = ConfigDict(extra="ignore")

    tenant_id: str
    id: str
    created_at: str
    """ISO-8601 UTC with microseconds; also the listing order (ties broken by `id`)."""


class AgentRecord(Record):
    name: str
    system: str
    model: str
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    updated_at: str


class GroupRecord(Record):
    agent_ids: list[str]
    description: str = ""
    manager_config: dict[str, Any]
    """The validated `ManagerConfig`, dumped; `manager_type` is always present."""
    shared_block_ids: list[str] = Field(default_factory=list)
    hidden: bool | None = None
    project_id: str | None = None
    updated_at: str

    @property
    def manager_type(self) -> str:
        return str(self.manager_config["manager_type"])


class RunRecord(Record):
    agent_id: str
    """Letta's `Run.agent_id` is required: for a group run, the group's first (or manager) agent."""
    group_id: str | None = None
    status: RunStatus = "created"
    completed_at: str | None = None
    background: bool = False
    metadata: dict[str, Any] = Field(default_factory=dict)
    request_config: dict[str, Any] = Field(default_factory=dict)
    stop_reason: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None
    usage: dict[str, Any] | None = None
    expires_at: float | None = None
    """Epoch seconds after which the run's event log is gone (resume answers 410)."""

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class MessageRecord(Record):
    """One message of a conversation's history, written once per (run, step, index)."""

    group_id: str | None = None
    agent_id: str | None = None
    """The agent that spoke it, or None for the user's input."""
    run_id: str
    step_key: str
    """Which step of the run wrote it; with `index`, the idempotency key of the write."""
    index: int
    position: str
    """Sortable key ordering the history: `<created ns>:<step_key>:<index>`."""
    message: dict[str, Any]
    """The `LettaMessage` JSON as the API returns it."""


class Page(BaseModel):
    """Cursor pagination of a listing, as Letta's list routes take it."""

    before: str | None = None
    after: str | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    order: Literal["asc", "desc"] = "desc"
