"""Starting, following and cancelling runs: what the API routes call.

Everything that can fail with an HTTP error (unknown group, manager type
not runnable yet, an agent whose model cannot run) is checked in `start`,
before the response begins; after the first byte, failures travel as stop
reasons inside the stream.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from chorus.engine.managers import manager_for
from chorus.errors import BadRequest, NotFound
from chorus.ids import new_id
from chorus.llm.base import Model
from chorus.llm.resolve import resolve_model
from chorus.runs.driver import ModelResolver, RunDriver, RunPlan, now_iso
from chorus.runs.executor import InProcessExecutor
from chorus.runs.log import RunLog
from chorus.runs.tailer import tail_memory, tail_store
from chorus.schemas.requests import MessageCreate, MessageRequest
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import AgentRecord, RunRecord


@dataclass(slots=True)
class ActiveRun:
    plan: RunPlan
    log: RunLog


class RunService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        executor: InProcessExecutor | None = None,
        resolver: ModelResolver | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._resolver = resolver
        self.executor = executor or InProcessExecutor()
        self._active: dict[str, ActiveRun] = {}

    def resolve(self, agent: AgentRecord) -> Model:
        """The agent's model: the injected resolver's (tests) or the handle's provider."""
        if self._resolver is not None:
            return self._resolver(agent)
        return resolve_model(agent.model, agent.metadata)

    async def start_group_run(
        self, tenant_id: str, group_id: str, request: MessageRequest, *, streaming: bool
    ) -> ActiveRun:
        """Validate, create the run record and start executing it; returns once the run exists."""
        group = await self.store.get_group(tenant_id, group_id)
        manager_for(group.manager_type)
        agents = {}
        for agent_id in group.agent_ids:
            try:
                agent = await self.store.get_agent(tenant_id, agent_id)
            except NotFound:
                raise BadRequest(f"Group {group_id} names agent {agent_id}, which no longer exists.") from None
            self.resolve(agent)
            agents[agent_id] = agent
        inputs = request.input_messages()
        if not all(isinstance(m, MessageCreate) for m in inputs):
            raise BadRequest("No approval request is pending in this group: approvals cannot be applied.")
        run = RunRecord(
            tenant_id=tenant_id,
            id=new_id("run"),
            created_at=now_iso(),
            agent_id=group.agent_ids[0],
            group_id=group.id,
            background=request.background,
            metadata={
                "run_type": "send_message_streaming" if streaming else "send_message",
                "group_id": group.id,
            },
            request_config={
                "use_assistant_message": request.use_assistant_message,
                "assistant_message_tool_name": request.assistant_message_tool_name,
                "assistant_message_tool_kwarg": request.assistant_message_tool_kwarg,
                "include_return_message_types": request.include_return_message_types,
            },
            expires_at=time.time() + self.settings.event_retention_s,
        )
        await self.store.put_run(run)
        plan = RunPlan(
            run=run,
            group=group,
            agents=agents,
            inputs=[m for m in inputs if isinstance(m, MessageCreate)],
            stream_tokens=request.stream_tokens and streaming,
            max_steps=request.max_steps,
        )
        include = request.include_return_message_types
        log = RunLog(
            self.store,
            tenant_id,
            run.id,
            include_types=frozenset(include) if include is not None else None,
            flush_events=self.settings.log_flush_events,
            flush_interval_s=self.settings.log_flush_interval_s,
        )
        log.start()
        active = ActiveRun(plan, log)
        self._active[run.id] = active
        self.executor.submit(run.id, self._execute(active))
        return active

    async def _execute(self, active: ActiveRun) -> None:
        try:
            await RunDriver(self.store, self.resolve, active.plan, active.log).execute()
        finally:
            self._active.pop(active.plan.run.id, None)

    async def wait(self, active: ActiveRun) -> None:
        await self.executor.wait(active.plan.run.id)

    def follow(
        self,
        tenant_id: str,
        run_id: str,
        after_seq: int = 0,
        *,
        include_pings: bool,
        poll_interval: float = 0.1,
        batch_size: int = 100,
    ) -> AsyncIterator[bytes]:
        """SSE frames of a run after `after_seq`, live from memory if it runs here, else from the store."""
        ping = self.settings.ping_interval_s if include_pings else None
        active = self._active.get(run_id)
        if active is not None and active.plan.run.tenant_id == tenant_id:
            return tail_memory(active.log, after_seq, ping)
        return tail_store(
            self.store,
            tenant_id,
            run_id,
            after_seq,
            batch_size=batch_size,
            poll_interval=poll_interval,
            ping_interval=ping,
        )

    def cancel_local(self, run_id: str) -> bool:
        """Ask a run executing here to stop; False if it is not running here."""
        active = self._active.get(run_id)
        if active is None:
            return False
        active.plan.cancel.set()
        return True

    async def shutdown(self) -> None:
        await self.executor.shutdown()
        await asyncio.gather(*(a.log.abort() for a in list(self._active.values())), return_exceptions=True)
