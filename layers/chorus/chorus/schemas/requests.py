"""Request bodies of the message routes (`MessageStreamParams` and friends)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag, model_validator

from chorus.limits import MAX_CURSOR, MAX_LIST_ITEMS, MAX_STEPS, MAX_TEXT_CHARS
from chorus.schemas.content import BodyModel, ContentList, ContentPart, WireModel

MessageType = Literal[
    "system_message",
    "user_message",
    "assistant_message",
    "reasoning_message",
    "hidden_reasoning_message",
    "tool_call_message",
    "tool_return_message",
    "approval_request_message",
    "approval_response_message",
]


class MessageCreate(BodyModel):
    """A message sent to the group (Letta's `MessageCreate`)."""

    type: Literal["message"] | None = "message"
    role: Literal["user", "system", "assistant"]
    content: Annotated[str, Field(max_length=MAX_TEXT_CHARS)] | ContentList
    name: str | None = None
    otid: str | None = None
    sender_id: str | None = None
    batch_item_id: str | None = None
    group_id: str | None = None


class ApprovalReturn(WireModel):
    type: Literal["approval"] = "approval"
    tool_call_id: str
    approve: bool
    reason: str | None = None


class ToolReturn(WireModel):
    type: Literal["tool"] = "tool"
    tool_call_id: str
    tool_return: str = Field(max_length=MAX_TEXT_CHARS)
    status: Literal["success", "error"]
    stdout: list[str] | None = None
    stderr: list[str] | None = None


def _approval_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "approval"))
    return str(getattr(value, "type", "approval"))


Approval = Annotated[
    Annotated[ApprovalReturn, Tag("approval")] | Annotated[ToolReturn, Tag("tool")],
    Discriminator(_approval_tag),
]


class ApprovalCreate(BodyModel):
    """Approves or denies pending tool calls (Letta's `ApprovalCreate`)."""

    type: Literal["approval"] = "approval"
    approvals: list[Approval] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    approve: bool | None = Field(default=None, json_schema_extra={"deprecated": True})
    approval_request_id: str | None = Field(default=None, json_schema_extra={"deprecated": True})
    reason: str | None = Field(default=None, json_schema_extra={"deprecated": True})
    group_id: str | None = None


def _input_message_tag(value: Any) -> str:
    if isinstance(value, dict):
        kind = value.get("type")
        if kind == "approval" or (kind is None and "role" not in value and "approvals" in value):
            return "approval"
        return "message"
    return "approval" if isinstance(value, ApprovalCreate) else "message"


InputMessage = Annotated[
    Annotated[MessageCreate, Tag("message")] | Annotated[ApprovalCreate, Tag("approval")],
    Discriminator(_input_message_tag),
]


class ClientTool(BodyModel):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


MultitaskStrategy = Literal["reject", "enqueue", "interrupt", "rollback"]
"""What a send does when its group is busy with another run (a Chorus extension, LangGraph's words)."""


class MessageRequest(BodyModel):
    """Body of `POST /v1/groups/{group_id}/messages[/stream]` (the seed's `MessageStreamParams`).

    Streaming-only options are checked against `streaming` by the route,
    because the dedicated stream route forces `streaming=true` first.
    """

    messages: list[InputMessage] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    input: (
        Annotated[str, Field(max_length=MAX_TEXT_CHARS)]
        | Annotated[list[ContentPart], Field(max_length=MAX_LIST_ITEMS)]
        | None
    ) = None
    max_steps: int = Field(default=50, ge=1, le=MAX_STEPS)
    streaming: bool = False
    stream_tokens: bool = False
    background: bool = False
    include_pings: bool = True
    include_return_message_types: list[MessageType] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    client_tools: list[ClientTool] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    use_assistant_message: bool = Field(default=True, json_schema_extra={"deprecated": True})
    assistant_message_tool_name: str = Field(default="send_message", json_schema_extra={"deprecated": True})
    assistant_message_tool_kwarg: str = Field(default="message", json_schema_extra={"deprecated": True})
    enable_thinking: str | None = Field(default=None, json_schema_extra={"deprecated": True})
    multitask_strategy: MultitaskStrategy = Field(
        default="reject",
        description="Chorus extension: when the group is busy, `reject` (409), `enqueue` (start after the "
        "runs ahead), `interrupt` (cancel the active run, then start) or `rollback` (as interrupt, and "
        "remove the cancelled run's messages from history).",
    )

    @model_validator(mode="after")
    def _one_source_of_input(self) -> MessageRequest:
        has_messages = bool(self.messages)
        has_input = self.input is not None and self.input != "" and self.input != []
        if has_messages == has_input:
            raise ValueError("Provide exactly one of 'messages' or 'input'.")
        return self

    def input_messages(self) -> list[MessageCreate | ApprovalCreate]:
        """The request's messages, with `input` expanded to one user message."""
        if self.messages:
            return list(self.messages)
        assert self.input is not None
        return [MessageCreate(role="user", content=self.input)]

    def streaming_only_options(self) -> list[str]:
        """Options that mean something only when streaming, set to non-defaults."""
        names = []
        if self.stream_tokens:
            names.append("stream_tokens")
        if not self.include_pings:
            names.append("include_pings")
        if self.background:
            names.append("background")
        return names


class AsyncMessageRequest(MessageRequest):
    """Body of `POST …/messages/async`: Letta's adds `callback_url`, which is refused (the route says why)."""

    callback_url: str | None = Field(default=None, max_length=2048)


class ResumeRequest(WireModel):
    """Body of `POST /v1/runs/{run_id}/stream`."""

    starting_after: int = Field(default=0, ge=0, le=MAX_CURSOR)
    include_pings: bool = True
    poll_interval: float = Field(default=0.1, gt=0, le=60)
    batch_size: int = Field(default=100, ge=1, le=10_000)


class CancelRequest(WireModel):
    run_ids: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
