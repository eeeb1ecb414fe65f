"""`/v1/agents`: create, list, read, update, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from chorus.api.deps import AgentIdPath, PageDep, ServicesDep, TenantDep
from chorus.clock import now_iso
from chorus.ids import new_id
from chorus.llm.resolve import check_handle, default_model_handle, split_handle
from chorus.schemas.requests import CancelRequest
from chorus.schemas.resources import AgentCreate, AgentState, AgentUpdate, LlmConfig
from chorus.store.records import AgentRecord

router = APIRouter(prefix="/v1/agents", tags=["agents"])

DEFAULT_SYSTEM = "You are a helpful agent taking part in a group conversation."
_ENDPOINT_TYPES = frozenset({"openai", "anthropic", "bedrock", "ollama", "vllm"})


def agent_state(agent: AgentRecord) -> AgentState:
    """The Letta `AgentState` view of an agent.

    Letta clients require `llm_config.model_endpoint_type` from a fixed list;
    providers outside it (the `scripted` model) report `openai`, the wire
    format they imitate, and name themselves in `provider_name`.
    """
    provider, name = split_handle(agent.model)
    return AgentState(
        id=agent.id,
        name=agent.name,
        system=agent.system,
        description=agent.description,
        model=agent.model,
        llm_config=LlmConfig(
            model=name,
            model_endpoint_type=provider if provider in _ENDPOINT_TYPES else "openai",
            context_window=128_000,
            handle=agent.model,
            provider_name=provider,
        ),
        tags=agent.tags,
        metadata=agent.metadata,
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


@router.post("", response_model=AgentState)
@router.post("/", response_model=AgentState, include_in_schema=False)
async def create_agent(body: AgentCreate, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    model = body.model or default_model_handle(svc.settings.default_model)
    check_handle(model, body.metadata)
    agent_id = new_id("agent")
    now = now_iso()
    agent = AgentRecord(
        tenant_id=tenant_id,
        id=agent_id,
        created_at=now,
        updated_at=now,
        name=body.name or f"agent-{agent_id[6:14]}",
        system=body.system or DEFAULT_SYSTEM,
        model=model,
        description=body.description,
        tags=body.tags,
        metadata=body.metadata,
    )
    await svc.store.put_agent(agent)
    return agent_state(agent)


@router.get("", response_model=list[AgentState])
@router.get("/", response_model=list[AgentState], include_in_schema=False)
async def list_agents(svc: ServicesDep, tenant_id: TenantDep, page: PageDep) -> list[AgentState]:
    return [agent_state(a) for a in await svc.store.list_agents(tenant_id, page)]


@router.get("/{agent_id}", response_model=AgentState)
async def get_agent(agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    return agent_state(await svc.store.get_agent(tenant_id, agent_id))


@router.patch("/{agent_id}", response_model=AgentState)
async def update_agent(agent_id: AgentIdPath, body: AgentUpdate, svc: ServicesDep, tenant_id: TenantDep) -> AgentState:
    agent = await svc.store.get_agent(tenant_id, agent_id)
    changes = body.model_dump(exclude_unset=True, exclude_none=True)
    updated = agent.model_copy(update={**changes, "updated_at": now_iso()})
    check_handle(updated.model, updated.metadata)
    await svc.store.put_agent(updated)
    return agent_state(updated)


@router.post("/{agent_id}/messages/cancel")
async def cancel_agent_runs(
    agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep, body: CancelRequest | None = None
) -> dict[str, Any]:
    """Cancel the agent's active runs (or the listed ones); 409 when none is active."""
    await svc.store.get_agent(tenant_id, agent_id)
    return await svc.runs.cancel_active(tenant_id, "agent", agent_id, body.run_ids if body else None)


@router.delete("/{agent_id}")
async def delete_agent(agent_id: AgentIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, str]:
    await svc.store.delete_agent(tenant_id, agent_id)
    return {"message": f"Agent id={agent_id} successfully deleted"}
