"""What the store keeps. Plain pydantic records, serialised as JSON by every adapter.

Records carry `tenant_id` so that every adapter scopes every read and write by
tenant (invariant 6): an object of another tenant is simply not found.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.tokens import DEFAULT_CONTEXT_WINDOW

RunStatus = Literal["created", "running", "completed", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


class Record(BaseModel):
    """Built on first use, as the wire models are (see `chorus.schemas`)."""

    model_config = ConfigDict(extra="ignore", defer_build=True)

    tenant_id: str
    id: str
    created_at: str
    """ISO-8601 UTC with microseconds; also the listing order (ties broken by `id`)."""


class AgentRecord(Record):
    name: str
    system: str
    model: str
    agent_type: str = "letta_v1_agent"
    reasoning: bool = False
    """Whether the agent's model thinks before answering (where the model can)."""
    description: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, Any] | None = None
    block_ids: list[str] = Field(default_factory=list)
    """The agent's own memory blocks, in context order (a group adds its shared blocks)."""
    tool_ids: list[str] = Field(default_factory=list)
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    approval_overrides: dict[str, bool] = Field(default_factory=dict)
    """Per-tool `requires_approval` set on this agent, over the tool's `default_requires_approval`."""
    context_window: int = DEFAULT_CONTEXT_WINDOW
    """Tokens the agent's context may hold (`llm_config.context_window`); past it, history is summarised."""
    updated_at: str


class ToolRecord(Record):
    """A tool (Letta's `Tool`): Python source run in the sandbox, or a tool of an MCP server, and the schema
    offered to models."""

    name: str
    description: str | None = None
    source_code: str
    """Empty for an MCP server's tool (`tool_type="external_mcp"`): the server runs it."""
    source_type: str = "python"
    json_schema: dict[str, Any]
    """`{"name", "description", "parameters"}`, as Letta returns it."""
    tags: list[str] = Field(default_factory=list)
    return_char_limit: int = 50_000
    default_requires_approval: bool = False
    updated_at: str
    tool_type: Literal["custom", "external_mcp"] = "custom"
    mcp_server_id: str | None = None
    """The MCP server that serves the tool (`external_mcp` only); its `name` is the MCP tool's name."""


class McpServerRecord(Record):
    """An MCP server (streamable HTTP) whose tools the tenant's agents may call.

    The auth token and custom header values are kept as given (the server sends them on every
    MCP request) and never leave the server in full: the API masks them (`chorus.api.mcp_views`)."""

    server_name: str
    server_url: str
    auth_header: str | None = None
    auth_token: str | None = None
    custom_headers: dict[str, str] = Field(default_factory=dict)
    tool_ids: dict[str, str] = Field(default_factory=dict)
    """MCP tool name -> id of its `ToolRecord`: a refresh keeps the ids of the tools that remain."""
    updated_at: str

    def headers(self) -> dict[str, str]:
        """The headers every MCP request to the server carries."""
        out = dict(self.custom_headers)
        if self.auth_header and self.auth_token is not None:
            out[self.auth_header] = self.auth_token
        return out


class BlockRecord(Record):
    """A memory block (Letta's `Block`): a labelled piece of text an agent keeps in its context."""

    label: str
    value: str = ""
    limit: int = 20_000
    """Characters the value may hold; an edit past it is refused, never truncated."""
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    updated_at: str
    version: int = 0
    """Bumped by every `update_block`: concurrent editors (sleeptime agents) compare and set."""
    applied_calls: list[str] = Field(default_factory=list)
    """The latest tool calls that edited the block: a retried call (same id) is not applied twice."""


class HeldCall(BaseModel):
    """A tool call held for a human's approval, its arguments as the model sent them (JSON text)."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tool_call_id: str
    name: str
    arguments: str


class OrchestratedCall(BaseModel):
    """A call of a tool only the orchestrator runs (the supervisor's broadcast), its arguments parsed."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    tool_call_id: str
    name: str
    arguments: dict[str, Any]


class AwaitingApproval(BaseModel):
    """The calls a step held for a human, stored as `{"approval": [...]}`."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    approval: list[HeldCall]


StepWait = OrchestratedCall | AwaitingApproval
"""What the turn a step ended waits on; the two stored shapes tell themselves apart by their keys."""


class PendingApproval(BaseModel):
    """A turn stopped for a human: the group's `pending_approval`, and what a resuming run continues."""

    model_config = ConfigDict(frozen=True, defer_build=True)

    run_id: str
    agent_id: str | None = None
    tool_calls: list[HeldCall]
    """The calls waiting on an answer."""
    round: int
    call: int = 0


class GroupRecord(Record):
    agent_ids: list[str]
    pending_approval: PendingApproval | None = None
    """The tool calls a paused run of the group waits on."""
    turns_counter: int = 0
    """Runs started in the group (sleeptime groups count them to pace their background agents)."""
    last_processed_message_id: str | None = None
    """The newest history message the sleeptime agents were given."""
    description: str = ""
    manager_config: dict[str, Any]
    """The validated `ManagerConfig`, dumped; `manager_type` is always present."""
    shared_block_ids: list[str] = Field(default_factory=list)
    hidden: bool | None = None
    project_id: str | None = None
    updated_at: str
    solo_agent_id: str | None = None
    """Set on the hidden one-member group that carries an agent's direct conversation
    (`/v1/agents/{id}/messages`, see `chorus.runs.solo`): never listed, 404 on the group routes."""

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
    """Epoch seconds after which the run's event log is gone (resume answers 410); set when the run ends."""
    version: int = 0
    """Bumped by every `update_run`; the compare-and-set token of leases and the cancel flag."""
    cancel_requested: bool = False
    lease_owner: str | None = None
    """The worker executing the run; with `lease_expires_at`, who may write its log."""
    lease_expires_at: float = 0.0
    incarnation: int = 1
    """How many workers have executed the run; a recovered run's new messages get fresh ids."""
    idempotency_key: str | None = None
    inputs: list[dict[str, Any]] = Field(default_factory=list)
    """The request's input messages (`MessageCreate` dumps), so another worker can re-drive the run."""
    options: dict[str, Any] = Field(default_factory=dict)
    """How the run streams and how far it may go; read it as `chorus.runs.options.RunOptions`."""
    traceparent: str | None = None
    """W3C `traceparent` of the run's root span when tracing is on (`chorus.tracing`): every process
    working on the run opens its spans under it, so a run is one trace."""

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


class StepRecord(Record):
    """One committed model step (`id` is the step id); written with its messages, once.

    Steps are where a run's progress lives: `round`/`call`/`step` place the step in the
    manager's plan, and the last step of a turn (`final`) carries what the manager needs of
    that turn, so a worker that takes a run over rebuilds the manager's view from them.
    """

    run_id: str
    step_key: str
    agent_id: str | None = None
    """None for the run's input (step key `00000`)."""
    stop_reason: str = "end_turn"
    text: str = ""
    """The turn's assistant text so far, for managers that read it."""
    usage: dict[str, int] = Field(default_factory=dict)
    log_seq: int = 0
    """The run log's last `seq_id` when the step committed: its events are all at or before it."""
    round: int = 0
    """Which manager decision (1-based) the step belongs to; 0 for the input."""
    call: int = 0
    """The call's place in that decision (parallel calls are numbered in plan order)."""
    calls: int = 1
    """How many calls that decision made: a round is complete when each has a final step."""
    step: int = 0
    """The step's place in its turn (1-based)."""
    final: bool = True
    """Whether this step ended its turn."""
    purpose: str = "speak"
    pending: StepWait | None = None
    """What the turn this step ended waits on: an orchestrated tool call, or calls held for approval."""
    reply_to: str | None = None
    error: str | None = None
    """Why the turn failed, for failures that do not end the run (broadcast replies)."""


class GroupQueue(BaseModel):
    """The runs of a group waiting for it (double-texting), kept beside its claim.

    `next` is the run that takes the group when its holder ends (an `interrupt` or `rollback`
    send); `waiting` are the `enqueue` sends after it, oldest first. Every change is a
    compare-and-set on `version` (`Store.put_group_queue`), so the line is exact across processes.
    """

    model_config = ConfigDict(defer_build=True)

    tenant_id: str
    group_id: str
    next: str | None = None
    waiting: list[str] = Field(default_factory=list)
    version: int = 0
    """0 for a line never written; bumped by every write."""

    @property
    def head(self) -> str | None:
        """The run that starts next."""
        return self.next if self.next is not None else (self.waiting[0] if self.waiting else None)

    def __contains__(self, run_id: object) -> bool:
        return run_id == self.next or run_id in self.waiting

    def without(self, run_id: str) -> GroupQueue:
        """This line with `run_id` gone from it."""
        return self.model_copy(
            update={
                "next": None if self.next == run_id else self.next,
                "waiting": [r for r in self.waiting if r != run_id],
            }
        )


class IdempotencyRecord(BaseModel):
    model_config = ConfigDict(defer_build=True)

    tenant_id: str
    key: str
    fingerprint: str
    """Hash of the request the key was first used with; the same key with another body is refused."""
    run_id: str
    expires_at: float


class Page(BaseModel):
    """Cursor pagination of a listing, as Letta's list routes take it."""

    model_config = ConfigDict(defer_build=True)

    before: str | None = None
    after: str | None = None
    limit: int = Field(default=50, ge=1, le=1000)
    order: Literal["asc", "desc"] = "desc"
