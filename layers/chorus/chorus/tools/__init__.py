"""Custom tools: the schema a model sees, derived from the tool's source, and a sandbox that runs it.

Neither module imports or executes user code in the server process: the schema
is read from the syntax tree and the code runs in a child interpreter.
"""

from chorus.tools.sandbox import ToolResult, run_tool
from chorus.tools.schema import ToolSchema, schema_from_json, schema_from_source

__all__ = ["ToolResult", "ToolSchema", "run_tool", "schema_from_json", "schema_from_source"]
