"""The resources of `SQLiteStore`: agents, tools, MCP servers, memory blocks and groups.

Each is one row of its table (the record's JSON beside the columns it is listed
and filtered by), written, read and listed by the generic helpers of `SQLiteCore`.
"""

from __future__ import annotations

from chorus.store.records import AgentRecord, BlockRecord, GroupRecord, McpServerRecord, Page, ToolRecord
from chorus.store.sqlite_core import SQLiteCore


class SQLiteResources(SQLiteCore):
    """The agent, tool, MCP server, block and group methods of the `store` port."""

    # agents
    async def put_agent(self, agent: AgentRecord) -> None:
        await self._call(self._put_sync, "agents", agent, {})

    async def get_agent(self, tenant_id: str, agent_id: str) -> AgentRecord:
        return AgentRecord.model_validate_json(await self._call(self._get_sync, "agents", tenant_id, agent_id))

    async def list_agents(self, tenant_id: str, page: Page) -> list[AgentRecord]:
        return await self._list(AgentRecord, "agents", tenant_id, page, {}, "created_at")

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        await self._call(self._delete_sync, "agents", tenant_id, agent_id)

    # tools
    async def put_tool(self, tool: ToolRecord) -> None:
        await self._call(self._put_sync, "tools", tool, {"name": tool.name})

    async def get_tool(self, tenant_id: str, tool_id: str) -> ToolRecord:
        return ToolRecord.model_validate_json(await self._call(self._get_sync, "tools", tenant_id, tool_id))

    async def get_tools(self, tenant_id: str, tool_ids: list[str]) -> list[ToolRecord]:
        rows = await self._call(self._get_many_sync, "tools", tenant_id, tool_ids)
        return [ToolRecord.model_validate_json(r) for r in rows]

    async def list_tools(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[ToolRecord]:
        return await self._list(ToolRecord, "tools", tenant_id, page, {"name": name}, "created_at")

    async def delete_tool(self, tenant_id: str, tool_id: str) -> None:
        await self._call(self._delete_sync, "tools", tenant_id, tool_id)

    # MCP servers
    async def put_mcp_server(self, server: McpServerRecord) -> None:
        await self._call(self._put_sync, "mcp_servers", server, {"name": server.server_name})

    async def get_mcp_server(self, tenant_id: str, server_id: str) -> McpServerRecord:
        return McpServerRecord.model_validate_json(
            await self._call(self._get_sync, "mcp_servers", tenant_id, server_id)
        )

    async def list_mcp_servers(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[McpServerRecord]:
        return await self._list(McpServerRecord, "mcp_servers", tenant_id, page, {"name": name}, "created_at")

    async def delete_mcp_server(self, tenant_id: str, server_id: str) -> None:
        await self._call(self._delete_sync, "mcp_servers", tenant_id, server_id)

    # memory blocks
    async def put_block(self, block: BlockRecord) -> None:
        await self._call(self._put_sync, "blocks", block, {"label": block.label, "version": block.version})

    async def get_block(self, tenant_id: str, block_id: str) -> BlockRecord:
        return BlockRecord.model_validate_json(await self._call(self._get_sync, "blocks", tenant_id, block_id))

    async def get_blocks(self, tenant_id: str, block_ids: list[str]) -> list[BlockRecord]:
        rows = await self._call(self._get_many_sync, "blocks", tenant_id, block_ids)
        return [BlockRecord.model_validate_json(r) for r in rows]

    async def list_blocks(self, tenant_id: str, page: Page, *, label: str | None = None) -> list[BlockRecord]:
        return await self._list(BlockRecord, "blocks", tenant_id, page, {"label": label}, "created_at")

    async def update_block(self, block: BlockRecord, *, expect_version: int) -> BlockRecord:
        return await self._cas("blocks", block, expect_version, lambda b: {"label": b.label, "version": b.version})

    async def delete_block(self, tenant_id: str, block_id: str) -> None:
        await self._call(self._delete_sync, "blocks", tenant_id, block_id)

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        await self._call(self._put_sync, "groups", group, {"listed": int(group.solo_agent_id is None)})

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord:
        return GroupRecord.model_validate_json(await self._call(self._get_sync, "groups", tenant_id, group_id))

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]:
        return await self._list(GroupRecord, "groups", tenant_id, page, {"listed": 1}, "created_at")

    async def delete_group(self, tenant_id: str, group_id: str) -> None:
        await self._call(self._delete_sync, "groups", tenant_id, group_id)
