"""Core memory as pure functions: rendering, the tools offered, and the edits they make."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from chorus.engine import memory


@dataclass
class B:
    label: str
    value: str = ""
    limit: int = 100
    description: str | None = None
    read_only: bool = False


@pytest.mark.parametrize(
    ("name", "arguments", "before", "after"),
    [
        (memory.APPEND, {"label": "h", "content": "likes tea"}, "", "likes tea"),
        (memory.APPEND, {"label": "h", "content": "likes cake"}, "likes tea", "likes tea\nlikes cake"),
        (memory.REPLACE, {"label": "h", "old_content": "tea", "new_content": "coffee"}, "likes tea", "likes coffee"),
        (memory.REPLACE, {"label": "h", "old_content": "a", "new_content": ""}, "a b a", " b "),
    ],
)
def test_edits(name: str, arguments: dict[str, str], before: str, after: str) -> None:
    assert memory.edit(name, arguments, B("h", before)) == after


@pytest.mark.parametrize(
    ("name", "arguments", "block", "needle"),
    [
        (memory.REPLACE, {"label": "h", "old_content": "x", "new_content": "y"}, B("h", "abc"), "not found"),
        (memory.REPLACE, {"label": "h", "old_content": "", "new_content": "y"}, B("h", "abc"), "must not be empty"),
        (memory.APPEND, {"label": "h", "content": "x" * 10}, B("h", "y" * 95), "over its limit of 100"),
        (memory.APPEND, {"label": "h", "content": "x"}, B("h", read_only=True), "read-only"),
        (memory.APPEND, {"label": "h", "content": 3}, B("h"), "must be a string"),
        ("memory_rethink", {"label": "h"}, B("h"), "not a memory tool"),
    ],
)
def test_refused_edits_say_why(name: str, arguments: dict[str, object], block: B, needle: str) -> None:
    with pytest.raises(memory.MemoryEditError, match=needle):
        memory.edit(name, arguments, block)


def test_render_and_tools() -> None:
    assert memory.render([]) == "" and memory.tools([]) == []
    blocks = [B("human", "Name: Ada", 50, "About the user"), B("rules", "Be brief", read_only=True)]
    text = memory.render(blocks)
    assert text.startswith("<memory_blocks>") and text.endswith("</memory_blocks>")
    assert "<human>\n<description>\nAbout the user\n</description>" in text
    assert "- chars_current=9\n- chars_limit=50" in text and "<value>\nName: Ada\n</value>" in text
    assert "- read_only=true" in text
    specs = memory.tools(blocks)
    assert [s.name for s in specs] == [memory.APPEND, memory.REPLACE]
    assert specs[0].parameters["properties"]["label"]["enum"] == ["human"]  # read-only blocks are not offered
    assert memory.tools([B("rules", read_only=True)]) == []
