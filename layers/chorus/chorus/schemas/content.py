"""Message content parts, as Letta's `LettaMessageContentUnion`.

`type` is optional on the wire (clients omit it for text), so the union is
discriminated by a function that treats a missing `type` as `"text"`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class WireModel(BaseModel):
    """Base of request-side models: unknown fields are ignored, as Letta does."""

    model_config = ConfigDict(extra="ignore")


class BodyModel(WireModel):
    """Base of request bodies and of the parts only they use: built on first use (see `chorus.schemas`)."""

    model_config = ConfigDict(defer_build=True)


class URLImage(WireModel):
    type: Literal["url"] = "url"
    url: str


class Base64Image(WireModel):
    type: Literal["base64"] = "base64"
    data: str
    media_type: str
    detail: str | None = None


class LettaImage(WireModel):
    type: Literal["letta"] = "letta"
    file_id: str
    data: str | None = None
    detail: str | None = None
    media_type: str | None = None


def _image_source_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "url"))
    return str(getattr(value, "type", "url"))


ImageSource = Annotated[
    Annotated[URLImage, Tag("url")] | Annotated[Base64Image, Tag("base64")] | Annotated[LettaImage, Tag("letta")],
    Discriminator(_image_source_tag),
]


class TextContent(WireModel):
    type: Literal["text"] = "text"
    text: str
    signature: str | None = None


class ImageContent(WireModel):
    type: Literal["image"] = "image"
    source: ImageSource


class ToolCallContent(WireModel):
    type: Literal["tool_call"] = "tool_call"
    id: str
    name: str
    input: dict[str, Any]
    signature: str | None = None


class ToolReturnContent(WireModel):
    type: Literal["tool_return"] = "tool_return"
    tool_call_id: str
    content: str
    is_error: bool


class ReasoningContent(WireModel):
    type: Literal["reasoning"] = "reasoning"
    is_native: bool
    reasoning: str
    signature: str | None = None


class RedactedReasoningContent(WireModel):
    type: Literal["redacted_reasoning"] = "redacted_reasoning"
    data: str


class OmittedReasoningContent(WireModel):
    type: Literal["omitted_reasoning"] = "omitted_reasoning"
    signature: str | None = None


class SummaryPart(WireModel):
    index: int
    text: str


class SummarizedReasoningContent(WireModel):
    type: Literal["summarized_reasoning"] = "summarized_reasoning"
    id: str
    summary: list[SummaryPart]
    encrypted_content: str | None = None


def _content_tag(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("type", "text"))
    return str(getattr(value, "type", "text"))


ContentPart = Annotated[
    Annotated[TextContent, Tag("text")]
    | Annotated[ImageContent, Tag("image")]
    | Annotated[ToolCallContent, Tag("tool_call")]
    | Annotated[ToolReturnContent, Tag("tool_return")]
    | Annotated[ReasoningContent, Tag("reasoning")]
    | Annotated[RedactedReasoningContent, Tag("redacted_reasoning")]
    | Annotated[OmittedReasoningContent, Tag("omitted_reasoning")]
    | Annotated[SummarizedReasoningContent, Tag("summarized_reasoning")],
    Discriminator(_content_tag),
]
"""Any content part of a message."""

ContentList = Annotated[list[ContentPart], Field(min_length=1)]


def content_text(content: str | list[ContentPart]) -> str:
    """The text a model should read for `content`: text parts joined, others described briefly."""
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for part in content:
        if isinstance(part, TextContent):
            pieces.append(part.text)
        elif isinstance(part, ImageContent):
            pieces.append("[image]")
        elif isinstance(part, ToolCallContent):
            pieces.append(f"[tool call {part.name}]")
        elif isinstance(part, ToolReturnContent):
            pieces.append(part.content)
        elif isinstance(part, ReasoningContent):
            pieces.append(part.reasoning)
    return "\n".join(pieces)
