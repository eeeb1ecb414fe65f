"""`/v1/agents/{agent_id}/tools…`: the tools an agent may call, and which of them need a human's approval.

Letta's routes: list the agent's tools, attach or detach one by id, and set
`requires_approval` for one of its tools by name (this agent only, over the
tool's `default_requires_approval`). Attach, detach and approval answer the
agent.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query

from chorus.api.changes import change_attachment
from chorus.api.deps import AgentIdPath, AscendingPageDep, ServicesDep, TenantDep, ToolIdPath
from chorus.api.json_body import JsonRoute
from chorus.api.listing import page_through
from chorus.api.views import agent_view
from chorus.clock import now_iso
from chorus.errors import BadRequest, NotFound
from chorus.schemas.resources import AgentState
from chorus.schemas.tools import ToolState

router = APIRouter(route_class=JsonRoute, prefix="/v1/agents/{agent_id}/tools", tags=["agents"])


@router.get("", response_model=list[ToolState])
async def list_agent_tools(
    agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep, page: AscendingPageDep
) -> list[ToolState]:
    """In attachment order by default; `after`/`before` are tool ids, as the SDK's pager sends them."""
    tools = (await agent_view(svc.store, await svc.store.get_agent(tenant_id, agent_id))).tools_state
    return page_through(tools, page, lambda t: t.id)


@router.patch("/attach/{tool_id}", response_model=AgentState)
async def attach_tool(agent_id: AgentIdPath, tool_id: ToolIdPath, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    await svc.store.get_tool(tenant_id, tool_id)
    return await change_attachment(svc.store, agent, "tool_ids", tool_id, attach=True)


@router.patch("/detach/{tool_id}", response_model=AgentState)
async def detach_tool(agent_id: AgentIdPath, tool_id: ToolIdPath, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    return await change_attachment(svc.store, agent, "tool_ids", tool_id, attach=False)


@router.patch("/approval/{tool_name}", response_model=AgentState)
async def update_approval(
    agent_id: AgentIdPath,
    tool_name: str,
    svc: ServicesDep,
    tenant_id: TenantDep,
    body_requires_approval: Annotated[bool | None, Body(alias="requires_approval", embed=True)] = None,
    query_requires_approval: Annotated[bool | None, Query(alias="requires_approval")] = None,
) -> AgentState:
    """Whether this agent must ask before calling `tool_name` (body or query `requires_approval`)."""
    requires = body_requires_approval if body_requires_approval is not None else query_requires_approval
    if requires is None:
        raise BadRequest("Say requires_approval: true or false.")
    agent = await svc.store.get_agent(tenant_id, agent_id)
    view = await agent_view(svc.store, agent)
    if tool_name not in {t.name for t in view.tools_state}:
        raise NotFound(f"Agent {agent_id} has no tool named {tool_name!r}.")
    overrides = {**agent.approval_overrides, tool_name: requires}
    agent = agent.model_copy(update={"approval_overrides": overrides, "updated_at": now_iso()})
    await svc.store.put_agent(agent)
    return (await agent_view(svc.store, agent)).state
