"""`/v1/agents/{agent_id}/messages…`: talking to one agent, as Letta's agent routes do.

An agent's direct conversation is a hidden one-member group (`chorus.runs.solo`),
so each send here starts a group run and is answered exactly as a group send is
(`chorus.api.message_sends`): the same stream, `Idempotency-Key`, approvals,
background runs, one active run per agent (409 naming it). The run shows
`agent_id` set to the agent and no group.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from chorus.api.deps import AgentIdPath, PageDep, Services, ServicesDep, TenantDep
from chorus.api.json_body import JsonRoute
from chorus.api.listing import json_size, within_budget
from chorus.api.message_sends import Start, add_send_routes
from chorus.api.views import agent_view
from chorus.errors import Conflict, NotFound
from chorus.ids import pattern
from chorus.runs.loading import members
from chorus.runs.solo import forget_solo, solo_group, solo_group_id, visible_group
from chorus.runs.starting import Started
from chorus.schemas.content import WireModel
from chorus.schemas.messages import LettaMessage
from chorus.schemas.requests import CancelRequest, MessageRequest
from chorus.schemas.resources import AgentState

router = APIRouter(route_class=JsonRoute, prefix="/v1/agents/{agent_id}", tags=["agents"])


class ResetMessagesRequest(WireModel):
    add_default_initial_messages: bool = False
    """Accepted for Letta clients; there are no default initial messages to add (the system prompt is not one)."""


def _starter(svc: Services, tenant_id: str, agent_id: str, idempotency_key: str | None) -> Start:
    async def start(body: MessageRequest, streaming: bool) -> Started:
        agent = await svc.store.get_agent(tenant_id, agent_id)
        group = await solo_group(svc.store, agent)
        return await svc.runs.start_group_run(
            tenant_id, group.id, body, streaming=streaming, idempotency_key=idempotency_key, group=group
        )

    return start


add_send_routes(router, "agent", _starter)


@router.post("/messages/cancel")
async def cancel_agent_runs(
    agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep, body: CancelRequest | None = None
) -> dict[str, Any]:
    """Cancel the agent's active runs (or the listed ones), direct or in its groups; 409 when none is active."""
    await svc.store.get_agent(tenant_id, agent_id)
    return await svc.runs.cancel_active(tenant_id, "agent", agent_id, body.run_ids if body else None)


@router.get("/messages", response_model=list[LettaMessage])
async def list_agent_messages(
    agent_id: AgentIdPath,
    svc: ServicesDep,
    tenant_id: TenantDep,
    page: PageDep,
    group_id: Annotated[str | None, Query(pattern=pattern("group"))] = None,
    conversation_id: Annotated[str | None, Query(max_length=100)] = None,
    include_err: bool | None = None,
    use_assistant_message: bool = True,
    assistant_message_tool_name: Annotated[str, Query(max_length=100)] = "send_message",
    assistant_message_tool_kwarg: Annotated[str, Query(max_length=100)] = "message",
) -> JSONResponse:
    """The agent's direct conversation, newest first by default; `before`/`after` are message ids.

    With `group_id`: the conversation of that group, as the agent (a member) sees it. Chorus has no
    Letta conversations, so a `conversation_id` is not found. The deprecated assistant-message
    options and `include_err` are accepted and change nothing (messages are always shown as stored)."""
    agent = await svc.store.get_agent(tenant_id, agent_id)
    if conversation_id is not None:
        raise NotFound(f"Conversation not found: {conversation_id}")
    history_id = solo_group_id(agent.id)
    if group_id is not None:
        group = await visible_group(svc.store, tenant_id, group_id)
        if agent.id not in members(group):
            raise NotFound(f"Agent {agent.id} is not a member of group {group_id}.")
        history_id = group.id
    records = await svc.store.list_messages(tenant_id, page, group_id=history_id)
    return JSONResponse(within_budget([r.message for r in records], json_size))


@router.patch("/reset-messages", response_model=AgentState)
async def reset_agent_messages(
    agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep, body: ResetMessagesRequest | None = None
) -> AgentState:
    """Forget the agent's direct conversation (409 while a run of it is active); its groups' histories stay."""
    agent = await svc.store.get_agent(tenant_id, agent_id)
    active = await svc.runs.active_runs(tenant_id, group_id=solo_group_id(agent.id))
    if active:
        raise Conflict(f"Agent {agent.id} has an active run ({active[0].id}).", run_id=active[0].id)
    await forget_solo(svc.store, tenant_id, agent.id)
    return (await agent_view(svc.store, agent)).state
