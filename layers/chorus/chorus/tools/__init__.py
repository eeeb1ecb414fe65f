"""Custom tools: the schema a model sees, derived from the tool's source without running it."""

from chorus.tools.schema import ToolSchema, schema_from_json, schema_from_source

__all__ = ["ToolSchema", "schema_from_json", "schema_from_source"]
