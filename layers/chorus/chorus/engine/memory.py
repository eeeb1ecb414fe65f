"""Core memory: how blocks read in an agent's context, and the edits its memory tools make.

Pure. Letta renders an agent's memory blocks into its system prompt and
gives it tools to edit them; Chorus does the same with Letta's classic
pair, `core_memory_append(label, content)` and
`core_memory_replace(label, old_content, new_content)`. The edit itself is
computed here (so it is the same wherever a step runs); the store applies
it with compare-and-set, because blocks shared by a group are edited by
several agents, sleeptime agents among them, at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chorus.vocabulary import ToolSpec

APPEND = "core_memory_append"
REPLACE = "core_memory_replace"
MEMORY_TOOLS = frozenset({APPEND, REPLACE})


class Block(Protocol):
    @property
    def label(self) -> str: ...

    @property
    def value(self) -> str: ...

    @property
    def limit(self) -> int: ...

    @property
    def description(self) -> str | None: ...

    @property
    def read_only(self) -> bool: ...


class MemoryEditError(ValueError):
    """An edit the block refuses; its message is the tool's error return, for the model to read."""


def render(blocks: Sequence[Block]) -> str:
    """The `<memory_blocks>` section of the system prompt (empty without blocks)."""
    if not blocks:
        return ""
    parts = ["<memory_blocks>", "The following memory blocks are currently engaged in your core memory unit:", ""]
    for block in blocks:
        parts += [f"<{block.label}>"]
        if block.description:
            parts += ["<description>", block.description, "</description>"]
        parts += [
            "<metadata>",
            f"- chars_current={len(block.value)}",
            f"- chars_limit={block.limit}",
            *(["- read_only=true"] if block.read_only else []),
            "</metadata>",
            "<value>",
            block.value,
            "</value>",
            f"</{block.label}>",
            "",
        ]
    parts.append("</memory_blocks>")
    return "\n".join(parts)


def tools(blocks: Sequence[Block]) -> list[ToolSpec]:
    """The memory tools, offered when the agent has a block it may write."""
    labels = [b.label for b in blocks if not b.read_only]
    if not labels:
        return []
    label = {"type": "string", "enum": labels, "description": "Section of the memory to be edited."}
    return [
        ToolSpec(
            APPEND,
            "Append to the contents of core memory.",
            {
                "type": "object",
                "properties": {
                    "label": label,
                    "content": {"type": "string", "description": "Content to write to the memory."},
                },
                "required": ["label", "content"],
            },
        ),
        ToolSpec(
            REPLACE,
            "Replace the contents of core memory. To delete memories, use an empty string for new_content.",
            {
                "type": "object",
                "properties": {
                    "label": label,
                    "old_content": {"type": "string", "description": "String to replace. Must be an exact match."},
                    "new_content": {"type": "string", "description": "Content to write to the memory."},
                },
                "required": ["label", "old_content", "new_content"],
            },
        ),
    ]


def edit(name: str, arguments: Mapping[str, Any], block: Block) -> str:
    """The block's value after the memory tool `name` with `arguments`; `MemoryEditError` if refused."""
    if block.read_only:
        raise MemoryEditError(f"The memory block {block.label!r} is read-only.")
    if name == APPEND:
        content = _string(arguments, "content")
        value = f"{block.value}\n{content}" if block.value else content
    elif name == REPLACE:
        old, new = _string(arguments, "old_content"), _string(arguments, "new_content")
        if not old:
            raise MemoryEditError("old_content must not be empty.")
        if old not in block.value:
            raise MemoryEditError(f"Old content {old!r} not found in memory block {block.label!r}.")
        value = block.value.replace(old, new)
    else:
        raise MemoryEditError(f"{name!r} is not a memory tool.")
    if len(value) > block.limit:
        raise MemoryEditError(
            f"Edit refused: memory block {block.label!r} would hold {len(value)} characters, "
            f"over its limit of {block.limit}. Shorten or replace existing content first."
        )
    return value


def _string(arguments: Mapping[str, Any], key: str) -> str:
    value = arguments.get(key)
    if not isinstance(value, str):
        raise MemoryEditError(f"Argument {key!r} must be a string.")
    return value
