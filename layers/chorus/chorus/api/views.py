"""Record → wire: how the API shows the store's records (Letta's shapes), apart from the routes that answer them.

Every route that shows an agent, block, tool, group or run maps it here, so
one resource has one shape whichever route answers it. Agents are shown with
their blocks and tools, read in one batch per kind for a whole listing
(`agent_views`), never one by one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chorus.engine.events import MESSAGE_TYPES
from chorus.llm.resolve import split_handle
from chorus.runs.solo import is_solo_run
from chorus.runs.starting import COUNTED_TURNS
from chorus.schemas.resources import AgentState, BlockState, GroupState, LlmConfig, RunState
from chorus.schemas.tools import ToolState
from chorus.store.base import Store
from chorus.store.records import AgentRecord, BlockRecord, GroupRecord, RunRecord, ToolRecord

_ENDPOINT_TYPES = frozenset({"openai", "anthropic", "bedrock", "ollama", "vllm"})
_HIDDEN_RUN_FIELDS = {
    "tenant_id",
    "usage",
    "expires_at",
    "version",
    "lease_owner",
    "lease_expires_at",
    "inputs",
    "options",
    "traceparent",
}


@dataclass(frozen=True, slots=True)
class AgentView:
    """An agent as shown, with the blocks and tools it shows (routes listing those reuse them)."""

    state: AgentState
    blocks_state: list[BlockState]
    tools_state: list[ToolState]


async def agent_view(store: Store, agent: AgentRecord) -> AgentView:
    """The agent as the API shows it, with its memory blocks and tools loaded (missing ones left out)."""
    return (await agent_views(store, [agent]))[0]


async def agent_views(store: Store, agents: Sequence[AgentRecord]) -> list[AgentView]:
    """`agent_view` of each agent (one tenant's), with two store reads however many agents, blocks and tools."""
    if not agents:
        return []
    tenant_id = agents[0].tenant_id
    blocks = {b.id: block_state(b) for b in await store.get_blocks(tenant_id, [i for a in agents for i in a.block_ids])}
    tools = {t.id: tool_state(t) for t in await store.get_tools(tenant_id, [i for a in agents for i in a.tool_ids])}
    views = []
    for agent in agents:
        agent_blocks = [blocks[i] for i in agent.block_ids if i in blocks]
        agent_tools = [tools[i] for i in agent.tool_ids if i in tools]
        views.append(AgentView(agent_state(agent, agent_blocks, agent_tools), agent_blocks, agent_tools))
    return views


def agent_state(
    agent: AgentRecord, blocks: list[BlockState] | None = None, tools: list[ToolState] | None = None
) -> AgentState:
    """The Letta `AgentState` view of an agent.

    Letta clients require `llm_config.model_endpoint_type` from a fixed list;
    providers outside it (the `scripted` model) report `openai`, the wire
    format they imitate, and name themselves in `provider_name`.
    """
    provider, name = split_handle(agent.model)
    return AgentState(
        id=agent.id,
        name=agent.name,
        agent_type=agent.agent_type,
        reasoning=agent.reasoning,
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
        blocks=[b.model_dump() for b in blocks or []],
        tools=[t.model_dump() for t in tools or []],
        tool_rules=agent.tool_rules,
        memory={"blocks": [b.model_dump() for b in blocks or []]},
        created_at=agent.created_at,
        updated_at=agent.updated_at,
    )


def block_state(block: BlockRecord) -> BlockState:
    return BlockState(
        id=block.id,
        label=block.label,
        value=block.value,
        limit=block.limit,
        description=block.description,
        read_only=block.read_only,
        metadata=block.metadata,
    )


def tool_state(tool: ToolRecord) -> ToolState:
    mcp = {"metadata_": {"mcp": {"server_id": tool.mcp_server_id}}} if tool.tool_type == "external_mcp" else {}
    return ToolState(
        id=tool.id,
        name=tool.name,
        description=tool.description,
        source_code=tool.source_code or None,
        source_type=tool.source_type,
        json_schema=tool.json_schema,
        tags=tool.tags,
        return_char_limit=tool.return_char_limit,
        default_requires_approval=tool.default_requires_approval,
        tool_type=tool.tool_type,
        **mcp,
    )


def group_state(group: GroupRecord) -> GroupState:
    config = {k: v for k, v in group.manager_config.items() if k != "manager_type"}
    if group.manager_type in COUNTED_TURNS:
        config["turns_counter"] = group.turns_counter
        config["last_processed_message_id"] = group.last_processed_message_id
    return GroupState(
        id=group.id,
        manager_type=group.manager_type,
        agent_ids=group.agent_ids,
        description=group.description,
        shared_block_ids=group.shared_block_ids,
        hidden=group.hidden,
        project_id=group.project_id,
        **config,
    )


def run_state(run: RunRecord) -> RunState:
    """The run as Letta shows it; a run of an agent's direct conversation shows no group (its group is hidden).
    When tracing is on it also shows `trace_id` (an extension): the run's trace in the user's OpenTelemetry backend."""
    trace = {"trace_id": run.traceparent.split("-")[1]} if run.traceparent else {}
    state = RunState(**run.model_dump(exclude=_HIDDEN_RUN_FIELDS), **trace)
    if is_solo_run(run):
        state.group_id = None
        state.metadata = {k: v for k, v in (state.metadata or {}).items() if k != "group_id"}
    return state


def letta_response(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A `LettaResponse` from a finished run's events (whole messages: non-streaming runs never chunk)."""
    messages = [e for e in events if e["message_type"] in MESSAGE_TYPES]
    stop = next(e for e in events if e["message_type"] == "stop_reason")
    usage = next((e for e in events if e["message_type"] == "usage_statistics"), None)
    return {
        "messages": messages,
        "stop_reason": {"message_type": "stop_reason", "stop_reason": stop["stop_reason"]},
        "usage": usage or {"message_type": "usage_statistics"},
    }
