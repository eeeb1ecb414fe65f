"""The ToolRunner function: one custom tool call per invocation; see `chorus.tools.tool_runner`."""

from chorus.tools.tool_runner import handler

__all__ = ["handler"]
