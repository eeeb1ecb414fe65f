"""The resources of `DynamoDBStore`: tools, MCP servers, memory blocks, agents and groups.

Each is one item listed by its tenant (`G1`, the `by_tenant` index), with the
attributes a listing filters on; see `dynamodb_keys` for the keys.
"""

from __future__ import annotations

from typing import Any

from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_core import DynamoDBCore
from chorus.store.records import AgentRecord, BlockRecord, GroupRecord, McpServerRecord, Page, ToolRecord


class DynamoDBResources(DynamoDBCore):
    """The tool, MCP server, block, agent and group methods of the `store` port."""

    # tools
    async def put_tool(self, tool: ToolRecord) -> None:
        await self._call(self._put_resource_sync, "Tool", tool, {"name": tool.name})

    async def get_tool(self, tenant_id: str, tool_id: str) -> ToolRecord:
        return ToolRecord.model_validate_json(await self._call(self._get_sync, "Tool", tenant_id, tool_id))

    async def get_tools(self, tenant_id: str, tool_ids: list[str]) -> list[ToolRecord]:
        rows = await self._call(self._get_many_sync, "Tool", tenant_id, tool_ids)
        return [ToolRecord.model_validate_json(r) for r in rows]

    async def list_tools(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[ToolRecord]:
        partition = keys.listing("Tool", tenant_id)
        return await self._list(ToolRecord, "Tool", tenant_id, page, "by_tenant", partition, {"name": name})

    async def delete_tool(self, tenant_id: str, tool_id: str) -> None:
        await self._call(self._delete_sync, "Tool", tenant_id, tool_id)

    # MCP servers
    async def put_mcp_server(self, server: McpServerRecord) -> None:
        await self._call(self._put_resource_sync, "McpServer", server, {"name": server.server_name})

    async def get_mcp_server(self, tenant_id: str, server_id: str) -> McpServerRecord:
        return McpServerRecord.model_validate_json(await self._call(self._get_sync, "McpServer", tenant_id, server_id))

    async def list_mcp_servers(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[McpServerRecord]:
        partition = keys.listing("McpServer", tenant_id)
        return await self._list(McpServerRecord, "McpServer", tenant_id, page, "by_tenant", partition, {"name": name})

    async def delete_mcp_server(self, tenant_id: str, server_id: str) -> None:
        await self._call(self._delete_sync, "McpServer", tenant_id, server_id)

    # memory blocks
    @staticmethod
    def _block_attrs(block: BlockRecord) -> dict[str, Any]:
        return {"label": block.label, "version": block.version}

    async def put_block(self, block: BlockRecord) -> None:
        await self._call(self._put_resource_sync, "Block", block, self._block_attrs(block))

    async def get_block(self, tenant_id: str, block_id: str) -> BlockRecord:
        return BlockRecord.model_validate_json(await self._call(self._get_sync, "Block", tenant_id, block_id))

    async def get_blocks(self, tenant_id: str, block_ids: list[str]) -> list[BlockRecord]:
        rows = await self._call(self._get_many_sync, "Block", tenant_id, block_ids)
        return [BlockRecord.model_validate_json(r) for r in rows]

    async def list_blocks(self, tenant_id: str, page: Page, *, label: str | None = None) -> list[BlockRecord]:
        partition = keys.listing("Block", tenant_id)
        return await self._list(BlockRecord, "Block", tenant_id, page, "by_tenant", partition, {"label": label})

    async def update_block(self, block: BlockRecord, *, expect_version: int) -> BlockRecord:
        stored = block.model_copy(update={"version": expect_version + 1})
        listed = {"G1": keys.listing("Block", block.tenant_id), **self._block_attrs(stored)}
        item = self._record_item("Block", stored, stored.created_at, listed)
        await self._call(self._cas_sync, "Block", stored, item, expect_version)
        return stored

    async def delete_block(self, tenant_id: str, block_id: str) -> None:
        await self._call(self._delete_sync, "Block", tenant_id, block_id)

    # agents
    async def put_agent(self, agent: AgentRecord) -> None:
        await self._call(self._put_resource_sync, "Agent", agent)

    async def get_agent(self, tenant_id: str, agent_id: str) -> AgentRecord:
        return AgentRecord.model_validate_json(await self._call(self._get_sync, "Agent", tenant_id, agent_id))

    async def list_agents(self, tenant_id: str, page: Page) -> list[AgentRecord]:
        return await self._list(AgentRecord, "Agent", tenant_id, page, "by_tenant", keys.listing("Agent", tenant_id))

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        await self._call(self._delete_sync, "Agent", tenant_id, agent_id)

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        unlisted = {"G1": None} if group.solo_agent_id is not None else None  # out of the tenant's listing
        await self._call(self._put_resource_sync, "Group", group, unlisted)

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord:
        return GroupRecord.model_validate_json(await self._call(self._get_sync, "Group", tenant_id, group_id))

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]:
        return await self._list(GroupRecord, "Group", tenant_id, page, "by_tenant", keys.listing("Group", tenant_id))

    async def delete_group(self, tenant_id: str, group_id: str) -> None:
        await self._call(self._delete_sync, "Group", tenant_id, group_id)
