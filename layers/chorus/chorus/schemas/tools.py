"""Tools and tool rules as the API accepts and returns them (Letta's `Tool`, `ToolCreate`, `ToolRule`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from chorus.ids import pattern
from chorus.limits import MAX_LIST_ITEMS, MAX_STEPS, MAX_TEXT_CHARS, MAX_TOOL_SOURCE_CHARS
from chorus.schemas.content import BodyModel

ToolId = Annotated[str, Field(pattern=pattern("tool"), examples=["tool-123e4567-e89b-42d3-8456-426614174000"])]


class ToolCreate(BodyModel):
    """Body of `POST /v1/tools` and `PUT /v1/tools` (upsert by name).

    The schema comes from `json_schema` when given, else from the Python
    `source_code` (its function signature and Google-style docstring)."""

    source_code: str = Field(min_length=1, max_length=MAX_TOOL_SOURCE_CHARS)
    source_type: Literal["python"] = "python"
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    tags: list[str] = Field(default_factory=list, max_length=MAX_LIST_ITEMS)
    json_schema: dict[str, Any] | None = None
    args_json_schema: dict[str, Any] | None = None
    return_char_limit: int = Field(default=50_000, ge=1, le=1_000_000)
    default_requires_approval: bool = False
    pip_requirements: list[dict[str, Any]] | None = None
    """Accepted for compatibility; the sandbox installs nothing (a non-empty list is a 400)."""


class ToolUpdate(BodyModel):
    source_code: str | None = Field(default=None, min_length=1, max_length=MAX_TOOL_SOURCE_CHARS)
    description: str | None = Field(default=None, max_length=MAX_TEXT_CHARS)
    tags: list[str] | None = Field(default=None, max_length=MAX_LIST_ITEMS)
    json_schema: dict[str, Any] | None = None
    return_char_limit: int | None = Field(default=None, ge=1, le=1_000_000)
    default_requires_approval: bool | None = None


class ToolState(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: str
    name: str
    description: str | None = None
    source_code: str | None = None
    source_type: str = "python"
    json_schema: dict[str, Any]
    args_json_schema: dict[str, Any] | None = None
    tags: list[str] = Field(default_factory=list)
    return_char_limit: int = 50_000
    default_requires_approval: bool = False
    tool_type: str = "custom"


class _Rule(BodyModel):
    tool_name: str = Field(min_length=1)


class InitToolRule(_Rule):
    type: Literal["run_first"] = "run_first"


class TerminalToolRule(_Rule):
    type: Literal["exit_loop"] = "exit_loop"


class ContinueToolRule(_Rule):
    type: Literal["continue_loop"] = "continue_loop"


class RequiredBeforeExitToolRule(_Rule):
    type: Literal["required_before_exit"] = "required_before_exit"


class RequiresApprovalToolRule(_Rule):
    type: Literal["requires_approval"] = "requires_approval"


class ChildToolRule(_Rule):
    type: Literal["constrain_child_tools"] = "constrain_child_tools"
    children: list[str] = Field(max_length=MAX_LIST_ITEMS)


class ParentToolRule(_Rule):
    type: Literal["parent_last_tool"] = "parent_last_tool"
    children: list[str] = Field(max_length=MAX_LIST_ITEMS)


class MaxCountPerStepToolRule(_Rule):
    type: Literal["max_count_per_step"] = "max_count_per_step"
    max_count_limit: int = Field(ge=1, le=MAX_STEPS)


ToolRule = Annotated[
    InitToolRule
    | TerminalToolRule
    | ContinueToolRule
    | RequiredBeforeExitToolRule
    | RequiresApprovalToolRule
    | ChildToolRule
    | ParentToolRule
    | MaxCountPerStepToolRule,
    Field(discriminator="type"),
]
