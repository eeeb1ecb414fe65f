"""Keeping a server's tools in step with what it lists: MCP tools stored as ordinary tools.

Each MCP tool becomes a `ToolRecord` (`tool_type="external_mcp"`, its name, description and input
schema as `json_schema.parameters`), so it attaches to agents and is offered to models like any tool.
A refresh keeps the id of every tool still listed (agents that have it attached keep it), updates
its schema, adds the new ones and deletes those the server no longer lists.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass, field

import orjson

from chorus.clock import now_iso
from chorus.errors import BadRequest, NotFound
from chorus.ids import new_id
from chorus.limits import MAX_MCP_TOOLS, MAX_TOOL_SOURCE_CHARS
from chorus.store.base import Store
from chorus.store.records import McpServerRecord, ToolRecord
from chorus.tools.mcp_client import McpToolInfo

__all__ = ["SyncSummary", "delete_server_tools", "sync_tools"]

TOOL_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""A function name every model provider accepts."""


@dataclass(slots=True)
class SyncSummary:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)


def _check(listed: list[McpToolInfo]) -> None:
    if len(listed) > MAX_MCP_TOOLS:
        raise BadRequest(f"The MCP server lists {len(listed)} tools; at most {MAX_MCP_TOOLS} are accepted.")
    for tool in listed:
        if not TOOL_NAME.match(tool.name):
            raise BadRequest(
                f"The MCP server lists a tool named {tool.name[:80]!r}: names must match {TOOL_NAME.pattern}."
            )
        if len(orjson.dumps(tool.input_schema)) + len(tool.description or "") > MAX_TOOL_SOURCE_CHARS:
            raise BadRequest(f"The MCP tool {tool.name!r} has a schema longer than {MAX_TOOL_SOURCE_CHARS} characters.")


def _record(server: McpServerRecord, info: McpToolInfo, existing: ToolRecord | None, now: str) -> ToolRecord:
    schema = {"name": info.name, "description": info.description or "", "parameters": info.input_schema}
    return ToolRecord(
        tenant_id=server.tenant_id,
        id=existing.id if existing else new_id("tool"),
        created_at=existing.created_at if existing else now,
        updated_at=now,
        name=info.name,
        description=info.description,
        source_code="",
        source_type="python",
        json_schema=schema,
        tags=["mcp", f"mcp:{server.server_name}"],
        return_char_limit=existing.return_char_limit if existing else 50_000,
        default_requires_approval=existing.default_requires_approval if existing else False,
        tool_type="external_mcp",
        mcp_server_id=server.id,
    )


async def sync_tools(
    store: Store, server: McpServerRecord, listed: list[McpToolInfo]
) -> tuple[McpServerRecord, SyncSummary]:
    """Store `listed` as the server's tools; returns the server record to store (its new `tool_ids`)."""
    _check(listed)
    now = now_iso()
    summary = SyncSummary()
    known = {t.id: t for t in await store.get_tools(server.tenant_id, list(server.tool_ids.values()))}
    tool_ids: dict[str, str] = {}
    for info in listed:
        if info.name in tool_ids:
            continue
        existing = known.get(server.tool_ids.get(info.name, ""))
        record = _record(server, info, existing, now)
        if existing is None:
            summary.added.append(info.name)
        elif existing.json_schema != record.json_schema or existing.description != record.description:
            summary.updated.append(info.name)
        if existing is None or info.name in summary.updated:
            await store.put_tool(record)
        tool_ids[info.name] = record.id
    for name, tool_id in server.tool_ids.items():
        if name not in tool_ids:
            summary.deleted.append(name)
            await _forget(store, server.tenant_id, tool_id)
    return server.model_copy(update={"tool_ids": tool_ids, "updated_at": now}), summary


async def delete_server_tools(store: Store, server: McpServerRecord) -> None:
    for tool_id in server.tool_ids.values():
        await _forget(store, server.tenant_id, tool_id)


async def _forget(store: Store, tenant_id: str, tool_id: str) -> None:
    with contextlib.suppress(NotFound):
        await store.delete_tool(tenant_id, tool_id)
