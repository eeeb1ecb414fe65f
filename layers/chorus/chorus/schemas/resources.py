"""Agents, groups and runs as the API accepts and returns them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.ids import pattern
from chorus.limits import MAX_BLOCK_CHARS, MAX_LIST_ITEMS, MAX_TEXT_CHARS, MAX_TURNS
from chorus.schemas.content import BodyModel
from chorus.schemas.tools import ToolId, ToolRule
from chorus.tokens import MAX_CONTEXT_WINDOW, MIN_CONTEXT_WINDOW

AgentId = Annotated[str, Field(pattern=pattern("agent"), examples=["agent-123e4567-e89b-42d3-8456-426614174000"])]
BlockId = Annotated[str, Field(pattern=pattern("block"), examples=["block-123e4567-e89b-42d3-8456-426614174000"])]
BlockLabel = Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_\-]+$")]


class BlockCreate(BodyModel):
    """Body of `POST /v1/blocks`, and each of an agent's `memory_blocks` (Letta's `CreateBlock`)."""

    label: BlockLabel
    value: str = Field(default="", max_length=MAX_BLOCK_CHARS)
    limit: int = Field(default=20_000, ge=1, le=MAX_BLOCK_CHARS)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    read_only: bool = False
    metadata: dict[str, Any] | None = None


class BlockUpdate(BodyModel):
    label: BlockLabel | None = None
    value: str | None = Field(default=None, max_length=MAX_BLOCK_CHARS)
    limit: int | None = Field(default=None, ge=1, le=MAX_BLOCK_CHARS)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    read_only: bool | None = None
    metadata: dict[str, Any] | None = None


class BlockState(BaseModel):
    """A block as returned by the API (Letta's `Block`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    label: str
    value: str
    limit: int
    description: str | None = None
    read_only: bool = False
    metadata: dict[str, Any] | None = None
    is_template: bool = False


AgentType = Literal[
    "letta_v1_agent",
    "memgpt_agent",
    "memgpt_v2_agent",
    "react_agent",
    "workflow_agent",
    "split_thread_agent",
    "sleeptime_agent",
    "voice_convo_agent",
    "voice_sleeptime_agent",
]

ManagerType = Literal["round_robin", "supervisor", "dynamic", "sleeptime", "voice_sleeptime"]


class RoundRobinManager(BodyModel):
    manager_type: Literal["round_robin"] = "round_robin"
    max_turns: int | None = Field(default=None, ge=1, le=MAX_TURNS)


class SupervisorManager(BodyModel):
    manager_type: Literal["supervisor"]
    manager_agent_id: AgentId


class DynamicManager(BodyModel):
    manager_type: Literal["dynamic"]
    manager_agent_id: AgentId
    termination_token: str | None = Field(default="DONE!", min_length=1, max_length=MAX_TEXT_CHARS)
    max_turns: int | None = Field(default=None, ge=1, le=MAX_TURNS)


class SleeptimeManager(BodyModel):
    manager_type: Literal["sleeptime"]
    manager_agent_id: AgentId
    sleeptime_agent_frequency: int | None = Field(default=None, ge=1, le=MAX_TURNS)


class VoiceSleeptimeManager(BodyModel):
    manager_type: Literal["voice_sleeptime"]
    manager_agent_id: AgentId
    max_message_buffer_length: int | None = Field(default=None, ge=0, le=MAX_TURNS)
    min_message_buffer_length: int | None = Field(default=None, ge=0, le=MAX_TURNS)


ManagerConfig = Annotated[
    RoundRobinManager | SupervisorManager | DynamicManager | SleeptimeManager | VoiceSleeptimeManager,
    Field(discriminator="manager_type"),
]


class AgentCreate(BodyModel):
    """Body of `POST /v1/agents`. Letta's many other fields are accepted and ignored."""

    name: str | None = Field(default=None, min_length=1, max_length=200)
    system: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    model: str | None = Field(default=None, max_length=200, description="Model handle `provider/model`.")
    agent_type: AgentType = "letta_v1_agent"
    """`memgpt_agent` / `memgpt_v2_agent` speak through the `send_message` tool, as in Letta."""
    reasoning: bool | None = None
    """Extended thinking for models that have it (Anthropic, Bedrock Claude); `enable_reasoner` too."""
    enable_reasoner: bool | None = Field(default=None, json_schema_extra={"deprecated": True})
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    metadata: dict[str, Any] | None = None
    memory_blocks: list[BlockCreate] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    """New blocks created for the agent, in context order."""
    block_ids: list[BlockId] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    """Existing blocks to attach (after `memory_blocks`)."""
    tool_ids: list[ToolId] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    tool_rules: list[ToolRule] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    context_window_limit: int | None = Field(default=None, ge=MIN_CONTEXT_WINDOW, le=MAX_CONTEXT_WINDOW)
    """Tokens the agent's context may hold (default: its model's window, see `chorus.tokens`)."""


class AgentUpdate(BodyModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    system: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    model: str | None = Field(default=None, max_length=200)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    tags: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    metadata: dict[str, Any] | None = None
    block_ids: list[BlockId] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    tool_ids: list[ToolId] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    tool_rules: list[ToolRule] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    reasoning: bool | None = None
    context_window_limit: int | None = Field(default=None, ge=MIN_CONTEXT_WINDOW, le=MAX_CONTEXT_WINDOW)


class LlmConfig(BaseModel):
    model: str
    model_endpoint_type: str
    context_window: int
    handle: str
    provider_name: str


class AgentState(BaseModel):
    """An agent as returned by the API, shaped to satisfy Letta clients' `AgentState`."""

    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    agent_type: str = "letta_v1_agent"
    system: str
    description: str | None = None
    model: str
    llm_config: LlmConfig
    tags: list[str]
    metadata: dict[str, Any] | None = None
    tools: list[dict[str, Any]] = Field(default_factory=list)
    tool_rules: list[dict[str, Any]] = Field(default_factory=list)
    sources: list[dict[str, Any]] = Field(default_factory=list)
    blocks: list[dict[str, Any]] = Field(default_factory=list)
    memory: dict[str, Any] = Field(default_factory=lambda: {"blocks": []})
    created_at: str
    updated_at: str


class GroupCreate(BodyModel):
    agent_ids: list[AgentId] = Field(max_length=MAX_LIST_ITEMS)
    description: str = Field(default="", max_length=MAX_TEXT_CHARS)
    manager_config: ManagerConfig = Field(default_factory=RoundRobinManager)
    shared_block_ids: list[BlockId] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    hidden: bool | None = None
    project_id: str | None = None


class GroupUpdate(BodyModel):
    agent_ids: list[AgentId] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    manager_config: ManagerConfig | None = None
    shared_block_ids: list[BlockId] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    project_id: str | None = None


class GroupState(BaseModel):
    """A group as returned by the API (Letta's `Group`: the config fields are flattened)."""

    model_config = ConfigDict(extra="allow")

    id: str
    manager_type: ManagerType
    agent_ids: list[str]
    description: str
    manager_agent_id: str | None = None
    termination_token: str | None = None
    max_turns: int | None = None
    sleeptime_agent_frequency: int | None = None
    turns_counter: int | None = None
    last_processed_message_id: str | None = None
    max_message_buffer_length: int | None = None
    min_message_buffer_length: int | None = None
    shared_block_ids: list[str] = Field(default_factory=list)
    hidden: bool | None = None
    project_id: str | None = None


RunStatus = Literal["created", "running", "completed", "failed", "cancelled"]


class RunState(BaseModel):
    """A run as returned by `GET /v1/runs/{run_id}` (fields of Letta's `Run`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    status: RunStatus
    created_at: str
    completed_at: str | None = None
    agent_id: str
    group_id: str | None = None
    conversation_id: str | None = None
    base_template_id: str | None = None
    background: bool = False
    metadata: dict[str, Any] | None = None
    request_config: dict[str, Any] | None = None
    stop_reason: str | None = None
    callback_url: str | None = None
    callback_sent_at: str | None = None
    callback_status_code: int | None = None
    callback_error: str | None = None
    ttft_ns: int | None = None
    total_duration_ns: int | None = None


class Health(BaseModel):
    status: str
    version: str
