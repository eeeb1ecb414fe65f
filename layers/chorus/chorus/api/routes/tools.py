"""`/v1/tools`: custom tools (Letta's tools API), their schema derived from Python source.

Letta clients send a function's source (`client.tools.upsert_from_function`)
and expect the server to derive the JSON schema from its signature and
docstring; a client may also send `json_schema` itself. Tool names are
unique per tenant: `PUT /v1/tools` upserts by name, `POST` refuses a name
that exists (409). Tools run through the configured tool executor
(`chorus.tools.executors`); when none here may run them (several tenants, no
isolating executor) a tool's source is refused (503) rather than stored to
fail later. No packages are installed for them, so `pip_requirements` is
refused (400) rather than silently ignored.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from chorus.api.deps import PageDep, ServicesDep, TenantDep, ToolIdPath
from chorus.api.json_body import JsonRoute
from chorus.api.listing import ITEM_OVERHEAD, within_budget
from chorus.api.views import tool_state
from chorus.clock import now_iso
from chorus.errors import BadRequest, Conflict
from chorus.ids import new_id
from chorus.schemas.tools import ToolCreate, ToolState, ToolUpdate
from chorus.store.base import Store
from chorus.store.records import Page, ToolRecord
from chorus.tools.executors import require_tool_execution
from chorus.tools.schema import ToolSchema, schema_from_json, schema_from_source

router = APIRouter(route_class=JsonRoute, prefix="/v1/tools", tags=["tools"])


def _schema(source_code: str, json_schema: dict[str, object] | None) -> ToolSchema:
    try:
        return schema_from_json(json_schema) if json_schema is not None else schema_from_source(source_code)
    except ValueError as exc:
        raise BadRequest(f"Cannot derive the tool's schema: {exc}") from None


async def by_name(store: Store, tenant_id: str, name: str) -> ToolRecord | None:
    found = await store.list_tools(tenant_id, Page(limit=1, order="asc"), name=name)
    return found[0] if found else None


def _own_source(tool: ToolRecord) -> None:
    """An MCP server's tool is defined by its server: its code and schema change only by a refresh."""
    if tool.tool_type == "external_mcp":
        raise Conflict(f"{tool.name!r} is a tool of an MCP server: refresh the server to change it.")


def _record(tenant_id: str, body: ToolCreate, existing: ToolRecord | None) -> ToolRecord:
    if body.pip_requirements:
        raise BadRequest("pip_requirements are not supported: tools run with the server's Python and its packages.")
    schema = _schema(body.source_code, body.json_schema)
    now = now_iso()
    return ToolRecord(
        tenant_id=tenant_id,
        id=existing.id if existing else new_id("tool"),
        created_at=existing.created_at if existing else now,
        updated_at=now,
        name=schema.name,
        description=body.description or schema.description,
        source_code=body.source_code,
        json_schema=schema.to_json(),
        tags=body.tags,
        return_char_limit=body.return_char_limit,
        default_requires_approval=body.default_requires_approval,
    )


@router.post("", response_model=ToolState)
async def create_tool(body: ToolCreate, svc: ServicesDep, tenant_id: TenantDep) -> ToolState:
    require_tool_execution(svc.runs.tool_executor)
    tool = _record(tenant_id, body, None)
    if await by_name(svc.store, tenant_id, tool.name) is not None:
        raise Conflict(f"A tool named {tool.name!r} exists; use PUT /v1/tools to replace it.")
    await svc.store.put_tool(tool)
    return tool_state(tool)


@router.put("", response_model=ToolState)
async def upsert_tool(body: ToolCreate, svc: ServicesDep, tenant_id: TenantDep) -> ToolState:
    require_tool_execution(svc.runs.tool_executor)
    name = _schema(body.source_code, body.json_schema).name
    existing = await by_name(svc.store, tenant_id, name)
    if existing is not None:
        _own_source(existing)
    tool = _record(tenant_id, body, existing)
    await svc.store.put_tool(tool)
    return tool_state(tool)


@router.get("", response_model=list[ToolState])
async def list_tools(
    svc: ServicesDep, tenant_id: TenantDep, page: PageDep, name: Annotated[str | None, Query()] = None
) -> list[ToolState]:
    tools = await svc.store.list_tools(tenant_id, page, name=name)
    return [tool_state(t) for t in within_budget(tools, lambda t: ITEM_OVERHEAD + len(t.source_code or ""))]


@router.get("/{tool_id}", response_model=ToolState)
async def get_tool(tool_id: ToolIdPath, svc: ServicesDep, tenant_id: TenantDep) -> ToolState:
    return tool_state(await svc.store.get_tool(tenant_id, tool_id))


@router.patch("/{tool_id}", response_model=ToolState)
async def update_tool(tool_id: ToolIdPath, body: ToolUpdate, svc: ServicesDep, tenant_id: TenantDep) -> ToolState:
    tool = await svc.store.get_tool(tenant_id, tool_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    if "source_code" in changes or "json_schema" in changes:
        _own_source(tool)
        require_tool_execution(svc.runs.tool_executor)
        schema = _schema(changes.get("source_code", tool.source_code), changes.get("json_schema"))
        if schema.name != tool.name and await by_name(svc.store, tenant_id, schema.name) is not None:
            raise Conflict(f"A tool named {schema.name!r} exists.")
        changes.update(name=schema.name, json_schema=schema.to_json())
    updated = tool.model_copy(update={**changes, "updated_at": now_iso()})
    await svc.store.put_tool(updated)
    return tool_state(updated)


@router.delete("/{tool_id}")
async def delete_tool(tool_id: ToolIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    await svc.store.delete_tool(tenant_id, tool_id)
    return {"message": f"Tool id={tool_id} successfully deleted"}
