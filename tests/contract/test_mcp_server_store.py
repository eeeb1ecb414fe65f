"""The store contract for MCP server records, on every adapter (the `store` fixture of conftest.py)."""

from __future__ import annotations

import pytest

from chorus.errors import NotFound
from chorus.store.base import Store
from chorus.store.records import McpServerRecord, Page, ToolRecord
from support.contract_records import stamp


def _server(tenant: str = "t1", *, created: int = 0, name: str = "docs") -> McpServerRecord:
    return McpServerRecord(
        tenant_id=tenant,
        id=f"mcp_server-{name}-{created}",
        created_at=stamp(created),
        updated_at=stamp(created),
        server_name=name,
        server_url="http://127.0.0.1:9/mcp",
        auth_header="Authorization",
        auth_token="Bearer s3cret",
        custom_headers={"X-Team": "blue"},
        tool_ids={"add": "tool-add"},
    )


async def test_put_get_replace_delete_scoped_by_tenant(store: Store) -> None:
    server = _server()
    await store.put_mcp_server(server)
    assert await store.get_mcp_server("t1", server.id) == server
    changed = server.model_copy(update={"server_url": "http://127.0.0.1:10/mcp", "tool_ids": {}})
    await store.put_mcp_server(changed)
    assert await store.get_mcp_server("t1", server.id) == changed
    with pytest.raises(NotFound, match=f"not found: {server.id}"):
        await store.get_mcp_server("t2", server.id)
    with pytest.raises(NotFound):
        await store.delete_mcp_server("t2", server.id)
    assert await store.list_mcp_servers("t2", Page()) == []
    await store.delete_mcp_server("t1", server.id)
    with pytest.raises(NotFound):
        await store.get_mcp_server("t1", server.id)


async def test_listing_orders_pages_and_filters_by_name(store: Store) -> None:
    servers = [_server(created=i, name=f"s{i}") for i in range(5)]
    for server in reversed(servers):
        await store.put_mcp_server(server)
    await store.put_mcp_server(_server("t2", name="s1"))
    assert await store.list_mcp_servers("t1", Page(order="asc")) == servers
    assert await store.list_mcp_servers("t1", Page(order="desc", limit=2)) == servers[:2:-1][:2]
    assert await store.list_mcp_servers("t1", Page(order="asc", after=servers[1].id, limit=2)) == servers[2:4]
    assert await store.list_mcp_servers("t1", Page(), name="s1") == [servers[1]]
    assert await store.list_mcp_servers("t1", Page(), name="none") == []


async def test_mcp_tools_round_trip_with_their_server(store: Store) -> None:
    tool = ToolRecord(
        tenant_id="t1",
        id="tool-add",
        created_at=stamp(0),
        updated_at=stamp(0),
        name="add",
        source_code="",
        json_schema={"name": "add", "parameters": {"type": "object", "properties": {}}},
        tool_type="external_mcp",
        mcp_server_id="mcp_server-docs-0",
    )
    await store.put_tool(tool)
    assert await store.get_tool("t1", tool.id) == tool
