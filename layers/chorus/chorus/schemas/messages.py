"""Response-side messages: the `LettaMessage` union and the stream's control events.

Field names, order and null-vs-absent follow the responses recorded from
Letta 0.16.4 (`shared/wire-samples/`). Beyond Letta, Chorus fills `seq_id`
on every event of a run and `name`/`sender_id` with the speaking agent.

The hot streaming path builds these as plain dicts (see `chorus.engine.events`)
for speed; these models document the shapes in OpenAPI and validate them in tests.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.schemas.content import ContentPart
from chorus.schemas.requests import Approval


class LettaMessageBase(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    date: str
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    step_id: str | None = None
    is_err: bool | None = None
    seq_id: int | None = None
    run_id: str | None = None


class SystemMessage(LettaMessageBase):
    message_type: Literal["system_message"] = "system_message"
    content: str


class UserMessage(LettaMessageBase):
    message_type: Literal["user_message"] = "user_message"
    content: str | list[ContentPart]


class AssistantMessage(LettaMessageBase):
    message_type: Literal["assistant_message"] = "assistant_message"
    content: str | list[ContentPart]


class ReasoningMessage(LettaMessageBase):
    message_type: Literal["reasoning_message"] = "reasoning_message"
    source: Literal["reasoner_model", "non_reasoner_model"] = "non_reasoner_model"
    reasoning: str
    signature: str | None = None


class HiddenReasoningMessage(LettaMessageBase):
    message_type: Literal["hidden_reasoning_message"] = "hidden_reasoning_message"
    state: Literal["redacted", "omitted"]
    hidden_reasoning: str | None = None


class ToolCall(BaseModel):
    name: str | None = None
    arguments: str | None = None
    tool_call_id: str | None = None


class ToolCallMessage(LettaMessageBase):
    message_type: Literal["tool_call_message"] = "tool_call_message"
    tool_call: ToolCall
    tool_calls: list[ToolCall] | None = None


class ToolReturnMessage(LettaMessageBase):
    message_type: Literal["tool_return_message"] = "tool_return_message"
    tool_return: str
    status: Literal["success", "error"]
    tool_call_id: str
    stdout: list[str] | None = None
    stderr: list[str] | None = None


class ApprovalRequestMessage(LettaMessageBase):
    message_type: Literal["approval_request_message"] = "approval_request_message"
    tool_call: ToolCall
    tool_calls: list[ToolCall] | None = None


class ApprovalResponseMessage(LettaMessageBase):
    message_type: Literal["approval_response_message"] = "approval_response_message"
    approvals: list[Approval] | None = None
    approve: bool | None = None
    approval_request_id: str | None = None
    reason: str | None = None


class Compaction(BaseModel):
    """Which messages a summary covers (Chorus's addition to Letta's `SummaryMessage`)."""

    first_message_id: str | None = None
    last_message_id: str | None = None
    messages: int = 0
    """How many messages, from the group's first, it replaces in agents' contexts."""
    tokens_before: int = 0
    """What the request that needed it measured, in tokens."""


class SummaryMessage(LettaMessageBase):
    """A summary of older history (see `docs/context-window.md`). Listed in history; streamed
    inside a `ping` (`summary`), since Letta's clients accept no summary event in a stream."""

    message_type: Literal["summary"] = "summary"
    summary: str
    compaction: Compaction


LettaMessage = Annotated[
    SystemMessage
    | UserMessage
    | AssistantMessage
    | ReasoningMessage
    | HiddenReasoningMessage
    | ToolCallMessage
    | ToolReturnMessage
    | ApprovalRequestMessage
    | ApprovalResponseMessage
    | SummaryMessage,
    Field(discriminator="message_type"),
]
"""A message of a conversation, as listed in history and streamed (a summary: listed only)."""


class LettaPing(BaseModel):
    message_type: Literal["ping"] = "ping"


class LettaStopReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    message_type: Literal["stop_reason"] = "stop_reason"
    stop_reason: str


class LettaUsageStatistics(BaseModel):
    model_config = ConfigDict(extra="allow")

    message_type: Literal["usage_statistics"] = "usage_statistics"
    completion_tokens: int = 0
    prompt_tokens: int = 0
    total_tokens: int = 0
    step_count: int = 0
    run_ids: list[str] | None = None
    cached_input_tokens: int | None = 0
    cache_write_tokens: int | None = 0
    reasoning_tokens: int | None = 0


class LettaErrorMessage(BaseModel):
    model_config = ConfigDict(extra="allow")

    message_type: Literal["error_message"] = "error_message"
    run_id: str
    error_type: str
    message: str
    detail: str | None = None
    seq_id: int | None = None


class LettaResponse(BaseModel):
    """Body of a non-streaming send."""

    messages: list[LettaMessage]
    stop_reason: LettaStopReason
    usage: LettaUsageStatistics


StreamEvent = Annotated[
    SystemMessage
    | UserMessage
    | AssistantMessage
    | ReasoningMessage
    | HiddenReasoningMessage
    | ToolCallMessage
    | ToolReturnMessage
    | ApprovalRequestMessage
    | ApprovalResponseMessage
    | LettaPing
    | LettaStopReason
    | LettaUsageStatistics
    | LettaErrorMessage,
    Field(discriminator="message_type"),
]
"""Anything a stream's `data:` line can carry before `[DONE]`."""

JsonDict = dict[str, Any]
