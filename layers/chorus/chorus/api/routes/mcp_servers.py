"""`/v1/mcp-servers`: a tenant's MCP tool servers (streamable HTTP) and their tools, as Letta's SDK calls them.

Creating or refreshing a server connects to it and stores the tools it lists (`chorus.tools.mcp_sync`);
a server that cannot be reached, refuses the credentials or is not allowed by the network policy is
a 400 saying which, and nothing is stored. Secrets are masked on the way out (`chorus.api.mcp_views`).
Every route is scoped to the caller's tenant: another tenant's server is a 404, like a missing one.
stdio servers are refused (400): they are commands this server would have to start for a tenant.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from chorus.api.deps import McpServerIdPath, ServicesDep, TenantDep, ToolIdPath
from chorus.api.json_body import JsonRoute
from chorus.api.mcp_views import mcp_server_state, unmask
from chorus.api.views import tool_state
from chorus.clock import now_iso
from chorus.errors import BadRequest, Conflict, NotFound
from chorus.ids import new_id
from chorus.limits import MAX_MCP_SERVERS
from chorus.schemas.mcp import (
    McpRefreshSummary,
    McpServerCreate,
    McpServerState,
    McpServerUpdate,
    McpToolRun,
    RefusedTransport,
    StreamableHttpUpdate,
    ToolExecution,
)
from chorus.schemas.tools import ToolState
from chorus.store.records import McpServerRecord, Page, ToolRecord
from chorus.tools.mcp_client import list_tools
from chorus.tools.mcp_executor import mcp_call
from chorus.tools.mcp_sync import delete_server_tools, sync_tools

router = APIRouter(route_class=JsonRoute, prefix="/v1/mcp-servers", tags=["mcp-servers"])

_ALL = Page(limit=MAX_MCP_SERVERS, order="asc")


def _refuse(config: RefusedTransport) -> BadRequest:
    if config.transport == "stdio":
        return BadRequest(
            "stdio MCP servers are not supported: they are commands the server would start for a tenant. "
            "Serve the tools over streamable HTTP and register its URL (mcp_server_type 'streamable_http')."
        )
    return BadRequest(
        "SSE MCP servers are not supported (the SSE transport is deprecated in MCP): register the server's "
        "streamable HTTP endpoint (mcp_server_type 'streamable_http')."
    )


def _needs_header(token: str | None, header: str | None) -> None:
    if token is not None and not header:
        raise BadRequest("auth_token needs auth_header, the header to send it in (e.g. 'Authorization').")


async def _sync(svc: ServicesDep, server: McpServerRecord) -> tuple[McpServerRecord, McpRefreshSummary]:
    """Connect, list the server's tools and store them with the server (400 if it cannot be used)."""
    listed = await list_tools(
        server.server_url, server.headers(), svc.runs.mcp_executor.policy, svc.settings.tool_timeout_s
    )
    synced, summary = await sync_tools(svc.store, server, listed)
    await svc.store.put_mcp_server(synced)
    return synced, McpRefreshSummary(added=summary.added, updated=summary.updated, deleted=summary.deleted)


async def _tool_of(
    svc: ServicesDep, tenant_id: str, server_id: str, tool_id: str
) -> tuple[McpServerRecord, ToolRecord]:
    server = await svc.store.get_mcp_server(tenant_id, server_id)
    if tool_id not in server.tool_ids.values():
        raise NotFound(f"Tool not found: {tool_id}")
    return server, await svc.store.get_tool(tenant_id, tool_id)


@router.post("", response_model=McpServerState)
async def create_mcp_server(body: McpServerCreate, svc: ServicesDep, tenant_id: TenantDep) -> McpServerState:
    """Register a streamable HTTP server and store the tools it lists."""
    config = body.config
    if isinstance(config, RefusedTransport):
        raise _refuse(config)
    existing = await svc.store.list_mcp_servers(tenant_id, _ALL)
    if any(s.server_name == body.server_name for s in existing):
        raise Conflict(f"An MCP server named {body.server_name!r} exists.")
    if len(existing) >= MAX_MCP_SERVERS:
        raise BadRequest(f"A tenant may register at most {MAX_MCP_SERVERS} MCP servers.")
    _needs_header(config.auth_token, config.auth_header)
    now = now_iso()
    server = McpServerRecord(
        tenant_id=tenant_id,
        id=new_id("mcp_server"),
        created_at=now,
        updated_at=now,
        server_name=body.server_name,
        server_url=config.server_url,
        auth_header=config.auth_header,
        auth_token=config.auth_token,
        custom_headers=config.custom_headers or {},
    )
    synced, _ = await _sync(svc, server)
    return mcp_server_state(synced)


@router.get("", response_model=list[McpServerState])
async def list_mcp_servers(svc: ServicesDep, tenant_id: TenantDep) -> list[McpServerState]:
    return [mcp_server_state(s) for s in await svc.store.list_mcp_servers(tenant_id, _ALL)]


@router.get("/{mcp_server_id}", response_model=McpServerState)
async def get_mcp_server(mcp_server_id: McpServerIdPath, svc: ServicesDep, tenant_id: TenantDep) -> McpServerState:
    return mcp_server_state(await svc.store.get_mcp_server(tenant_id, mcp_server_id))


@router.patch("/{mcp_server_id}", response_model=McpServerState)
async def update_mcp_server(
    mcp_server_id: McpServerIdPath, body: McpServerUpdate, svc: ServicesDep, tenant_id: TenantDep
) -> McpServerState:
    """Change the name, URL or credentials (not checked against the server: `refresh` does that)."""
    server = await svc.store.get_mcp_server(tenant_id, mcp_server_id)
    if isinstance(body.config, RefusedTransport):
        raise _refuse(body.config)
    changes = _changes(server, body.config)
    if body.server_name is not None and body.server_name != server.server_name:
        if await svc.store.list_mcp_servers(tenant_id, Page(limit=1), name=body.server_name):
            raise Conflict(f"An MCP server named {body.server_name!r} exists.")
        changes["server_name"] = body.server_name
    updated = server.model_copy(update={**changes, "updated_at": now_iso()})
    _needs_header(updated.auth_token, updated.auth_header)
    svc.runs.mcp_executor.policy.check_url(updated.server_url)
    await svc.store.put_mcp_server(updated)
    return mcp_server_state(updated)


def _changes(server: McpServerRecord, config: StreamableHttpUpdate) -> dict[str, object]:
    sent = config.model_dump(exclude_unset=True)
    changes: dict[str, object] = {}
    if sent.get("server_url"):
        changes["server_url"] = sent["server_url"]
    if "auth_header" in sent:
        changes["auth_header"] = sent["auth_header"]
    if "auth_token" in sent:
        token = sent["auth_token"]
        changes["auth_token"] = None if token is None else unmask(token, server.auth_token)
    if "custom_headers" in sent:
        headers = sent["custom_headers"] or {}
        changes["custom_headers"] = {k: unmask(v, server.custom_headers.get(k)) for k, v in headers.items()}
    return changes


@router.delete("/{mcp_server_id}", status_code=204)
async def delete_mcp_server(mcp_server_id: McpServerIdPath, svc: ServicesDep, tenant_id: TenantDep) -> Response:
    """Delete the server and its tools (agents that had them attached simply no longer have them)."""
    server = await svc.store.get_mcp_server(tenant_id, mcp_server_id)
    await delete_server_tools(svc.store, server)
    await svc.store.delete_mcp_server(tenant_id, mcp_server_id)
    return Response(status_code=204)


@router.patch("/{mcp_server_id}/refresh", response_model=McpRefreshSummary)
async def refresh_mcp_server(
    mcp_server_id: McpServerIdPath,
    svc: ServicesDep,
    tenant_id: TenantDep,
    agent_id: Annotated[str | None, Query(max_length=100)] = None,
) -> McpRefreshSummary:
    """List the server's tools again: keep the ids of those still there, add new ones, delete the gone.

    With `agent_id`, the tools the refresh added are attached to that agent too."""
    server = await svc.store.get_mcp_server(tenant_id, mcp_server_id)
    agent = await svc.store.get_agent(tenant_id, agent_id) if agent_id else None
    synced, summary = await _sync(svc, server)
    if agent is not None and summary.added:
        added = [synced.tool_ids[name] for name in summary.added]
        fresh = await svc.store.get_agent(tenant_id, agent.id)
        tool_ids = list(dict.fromkeys([*fresh.tool_ids, *added]))
        await svc.store.put_agent(fresh.model_copy(update={"tool_ids": tool_ids, "updated_at": now_iso()}))
    return summary


@router.get("/{mcp_server_id}/tools", response_model=list[ToolState])
async def list_mcp_tools(mcp_server_id: McpServerIdPath, svc: ServicesDep, tenant_id: TenantDep) -> list[ToolState]:
    server = await svc.store.get_mcp_server(tenant_id, mcp_server_id)
    return [tool_state(t) for t in await svc.store.get_tools(tenant_id, list(server.tool_ids.values()))]


@router.get("/{mcp_server_id}/tools/{tool_id}", response_model=ToolState)
async def get_mcp_tool(
    mcp_server_id: McpServerIdPath, tool_id: ToolIdPath, svc: ServicesDep, tenant_id: TenantDep
) -> ToolState:
    _, tool = await _tool_of(svc, tenant_id, mcp_server_id, tool_id)
    return tool_state(tool)


@router.post("/{mcp_server_id}/tools/{tool_id}/run", response_model=ToolExecution)
async def run_mcp_tool(
    mcp_server_id: McpServerIdPath, tool_id: ToolIdPath, body: McpToolRun, svc: ServicesDep, tenant_id: TenantDep
) -> ToolExecution:
    """Call the tool once, outside any run: what a tool call in a run would return (its failures included)."""
    server, tool = await _tool_of(svc, tenant_id, mcp_server_id, tool_id)
    call = mcp_call(tool, server, body.args, svc.settings.tool_timeout_s)
    result = await svc.runs.mcp_executor.run(call)
    return ToolExecution(status=result.status, func_return=result.value)
