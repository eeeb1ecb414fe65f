"""What an agent may call in a step, and running it: memory tools, custom tools, approval policy.

Loaded afresh each step (another agent may have edited a shared block, a
user may have attached a tool): the agent's memory blocks and its custom
tools (`tool_ids`). Memory tools edit blocks (`AgentMemory`); custom tools
run their Python source through the configured `ToolExecutor` (a bubblewrap
sandbox, Lambda, or a plain child process), with a timeout and no server
secrets; an MCP server's tools (`external_mcp`) go to their server through
the MCP executor, with the same timeout and output cap. What a tool returns is untrusted text: lone surrogates (a name
from `os.listdir` that is not UTF-8) become U+FFFD before anything stores
it. Whether a call needs a human's approval is decided here once: the
agent's `requires_approval` tool rules, then its per-tool override, then
the tool's `default_requires_approval`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from chorus.engine import memory
from chorus.engine.tool_rules import ToolRules
from chorus.errors import NotFound
from chorus.llm.base import ToolSpec
from chorus.runs.memory import AgentMemory
from chorus.store.base import Store
from chorus.store.records import AgentRecord, BlockRecord, ToolRecord
from chorus.tools.execution import ToolCall, ToolExecutor, ToolResult
from chorus.tools.executors import RefusingExecutor
from chorus.tools.mcp_executor import mcp_call
from chorus.tracing import tool_span, tracer

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ToolOutcome:
    content: str
    status: Literal["success", "error"]
    stdout: list[str] | None = None
    stderr: list[str] | None = None


@dataclass(slots=True)
class AgentTools:
    """One step's view of an agent's tools."""

    blocks: list[BlockRecord] = field(default_factory=list)
    custom: dict[str, ToolRecord] = field(default_factory=dict)

    def specs(self) -> list[ToolSpec]:
        out = memory.tools(self.blocks)
        for tool in self.custom.values():
            schema = tool.json_schema
            out.append(ToolSpec(tool.name, str(schema.get("description") or ""), dict(schema.get("parameters") or {})))
        return out


NO_EXECUTOR = RefusingExecutor("no tool executor was given to this run")
NO_MCP_EXECUTOR = RefusingExecutor("no MCP executor was given to this run")


class Toolbox:
    def __init__(
        self,
        store: Store,
        tenant_id: str,
        memory: AgentMemory,
        *,
        executor: ToolExecutor = NO_EXECUTOR,
        mcp_executor: ToolExecutor = NO_MCP_EXECUTOR,
        timeout_s: float = 30.0,
    ) -> None:
        self.store = store
        self.tenant_id = tenant_id
        self.memory = memory
        self.executor = executor
        self.mcp_executor = mcp_executor
        self.timeout_s = timeout_s

    async def load(self, agent: AgentRecord) -> AgentTools:
        tools = AgentTools(blocks=await self.memory.blocks(agent))
        for tool_id in agent.tool_ids:
            try:
                tool = await self.store.get_tool(self.tenant_id, tool_id)
            except NotFound:
                logger.warning("agent %s names tool %s, which no longer exists", agent.id, tool_id)
                continue
            tools.custom.setdefault(tool.name, tool)
        return tools

    @staticmethod
    def needs_approval(agent: AgentRecord, tools: AgentTools, name: str) -> bool:
        if ToolRules.of(agent.tool_rules).requires_approval(name):
            return True
        if name in agent.approval_overrides:
            return agent.approval_overrides[name]
        tool = tools.custom.get(name)
        return tool is not None and tool.default_requires_approval

    async def run(
        self, agent: AgentRecord, tools: AgentTools, name: str, arguments: Mapping[str, Any], call_id: str = ""
    ) -> ToolOutcome:
        """Run a memory or custom tool (the caller checked it is offered and allowed).

        Memory edits are applied once per tool call id; a custom tool's side effects are its
        own, so a call re-run after a crash runs again (at least once)."""
        with tracer().span(*tool_span(name, call_id)) as span:
            outcome = await self._run(agent, tools, name, arguments, call_id)
            if outcome.status == "error":
                span.fail(outcome.content[:200])
            return outcome

    async def _run(
        self, agent: AgentRecord, tools: AgentTools, name: str, arguments: Mapping[str, Any], call_id: str
    ) -> ToolOutcome:
        if name in memory.MEMORY_TOOLS:
            content, status = await self.memory.call(agent, name, arguments, call_id)
            return ToolOutcome(content, status)
        tool = tools.custom[name]
        if tool.tool_type == "external_mcp":
            result = await self._run_mcp(tool, arguments)
        else:
            call = ToolCall(
                tenant_id=self.tenant_id,
                source_code=tool.source_code,
                name=str(tool.json_schema.get("name") or tool.name),
                arguments=dict(arguments),
                timeout_s=self.timeout_s,
                return_char_limit=tool.return_char_limit,
            )
            result = await self.executor.run(call)
        return ToolOutcome(
            valid_text(result.value),
            result.status,
            [valid_text(line) for line in result.stdout],
            [valid_text(line) for line in result.stderr],
        )

    async def _run_mcp(self, tool: ToolRecord, arguments: Mapping[str, Any]) -> ToolResult:
        """Call the tool on its MCP server, read afresh (its URL or token may have changed since the run began)."""
        try:
            server = await self.store.get_mcp_server(self.tenant_id, tool.mcp_server_id or "")
        except NotFound:
            return ToolResult(f"Tool {tool.name} cannot run: its MCP server was deleted.", "error")
        call = mcp_call(tool, server, arguments, self.timeout_s)
        return await self.mcp_executor.run(call)


def valid_text(text: str) -> str:
    """`text` with every lone surrogate replaced by U+FFFD: storable as UTF-8 (JSON, SQLite, DynamoDB)."""
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
