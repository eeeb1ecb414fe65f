"""Starting a run: everything a send can fail with is decided here, before the first byte.

An unknown group, an agent gone or whose model cannot run, a group held by another live
run, a tenant at its active-run limit, a reused idempotency key with another body: each is
an HTTP error answered before the response begins; after the first byte, failures travel
as stop reasons inside the stream.

Order of a send, and why:
1. the run record is created (`created`; held from the start by this worker when it runs here,
   or by its first attempt's lease when it starts directly, `chorus.workflow.direct`);
2. the `Idempotency-Key`, if any, is remembered atomically for it; a key
   already pointing at another run means this is a retry: our record is
   dropped and the caller follows that run instead (invariant 8);
3. the group is claimed for the run; a group held by another live run is a
   409 naming it (invariant 7), and our record and key are dropped, so a
   retry later may start afresh;
4. one of the tenant's active-run slots is claimed; a tenant whose slots are
   all held by live runs gets 429 with `Retry-After`, and the group, our
   record and key are dropped as for a 409;
5. the run is launched (submitted to this worker's executor, or started remotely).

A send with a `multitask_strategy` other than `reject` takes another path after step 2: its
record is stored queued (never held), it claims its tenant slot (a queued run is an active
run), then `chorus.runs.multitask` places it in the group's line, or ahead of it, and starts
it when the group is its.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from chorus.clock import now_iso
from chorus.engine.managers.config import ManagerSettings
from chorus.errors import BadRequest, Conflict, NotFound, TooManyActiveRuns
from chorus.ids import new_id
from chorus.llm.base import Model
from chorus.runs.approvals import approval_answers
from chorus.runs.idempotency import fingerprint, remember_key
from chorus.runs.lease import Lease
from chorus.runs.loading import members
from chorus.runs.multitask import waiting
from chorus.runs.queue import LineFull
from chorus.runs.solo import visible_group
from chorus.schemas.requests import MessageCreate, MessageRequest, MultitaskStrategy
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, PendingApproval, RunRecord
from chorus.tracing import tracer

RETRY_AFTER_S = 5
"""What a 429 for a tenant at its active-run limit tells the client to wait before sending again."""
COUNTED_TURNS = frozenset({"sleeptime", "voice_sleeptime"})
"""Manager types whose groups count their runs (`turns_counter`), as Letta does."""


@dataclass(frozen=True, slots=True)
class Preloaded:
    """The group and agents a send read and validated, so the driver need not read them again."""

    group: GroupRecord
    agents: dict[str, AgentRecord]


@dataclass(frozen=True, slots=True)
class Started:
    """What a send produced: the run, and whether this request started it or retried an earlier one."""

    run: RunRecord
    replay: bool = False


Launch = Callable[[RunRecord, Preloaded], Awaitable[None]]
"""Executes a new run (here or remotely); a run it cannot start is ended before it raises."""
Place = Callable[[RunRecord, MultitaskStrategy], Awaitable[RunRecord]]
"""Puts a stored double-texting run in its group's line (`DoubleTexting.place`)."""


@dataclass(slots=True)
class RunStarter:
    store: Store
    settings: Settings
    lease: Lease
    resolve: Callable[[AgentRecord], Model]
    """The agent's model; resolving it refuses an agent whose model cannot run (400)."""
    hold: Callable[[RunRecord], dict[str, Any]]
    """What a new run is created with to be held from the start: by this worker when it runs
    here (`held()`), by its first remote attempt's lease when it starts directly; else nothing."""
    launch: Launch
    place: Place | None = None
    """Where sends with a `multitask_strategy` other than `reject` go; None: they are refused."""

    async def start(
        self,
        tenant_id: str,
        group_id: str,
        request: MessageRequest,
        *,
        streaming: bool,
        idempotency_key: str | None = None,
        group: GroupRecord | None = None,
    ) -> Started:
        """Validate and start a run, or find the run an earlier request with the same key started.

        `group` is the group as the caller has just read it (an agent's direct conversation,
        `chorus.runs.solo`); without it the group is read here, and a hidden one is not found."""
        if group is None:
            group = await visible_group(self.store, tenant_id, group_id)
        agents = {agent_id: await self._load_agent(tenant_id, group_id, agent_id) for agent_id in members(group)}
        run = self._new_run(group, request, streaming=streaming, idempotency_key=idempotency_key)
        await self.store.put_run(run)
        if idempotency_key is not None:
            earlier = await remember_key(
                self.store, run, idempotency_key, fingerprint(group_id, request), self.settings.event_retention_s
            )
            if earlier is not None:
                return Started(earlier, replay=True)
        if request.multitask_strategy != "reject":
            return Started(await self._place(run, request.multitask_strategy))
        holder = await self.store.claim_group(tenant_id, group_id, run.id)
        if holder is not None:
            await self._drop(run)
            owner = f"Agent {group.solo_agent_id}" if group.solo_agent_id else f"Group {group_id}"
            raise Conflict(f"{owner} already has an active run ({holder}); resume or cancel it first.", run_id=holder)
        try:
            await self._claim_slot(run)
        except TooManyActiveRuns:
            await self.store.release_group(tenant_id, group_id, run.id)
            await self._drop(run)
            raise
        if group.manager_type in COUNTED_TURNS:
            run, group = await self._count_turn(run, group)
        await self.launch(run, Preloaded(group, agents))
        return Started(run)

    async def _claim_slot(self, run: RunRecord) -> None:
        """One of the tenant's active-run slots for `run`; 429 when all are held by live runs."""
        limit = self.settings.max_active_runs_per_tenant
        if not await self.store.claim_run_slot(run.tenant_id, run.id, limit):
            raise TooManyActiveRuns(
                f"This tenant already has {limit} active runs, the most it may have at once; "
                "wait for one to finish (or cancel one) and send again.",
                retry_after_s=RETRY_AFTER_S,
            )

    async def _place(self, run: RunRecord, strategy: MultitaskStrategy) -> RunRecord:
        """A double-texting send after its record and key: its slot first, then its place in the
        group's line; refused (429, or a full line's 409), it leaves nothing behind."""
        if self.place is None:
            await self._drop(run)
            raise BadRequest(f"multitask_strategy={strategy} is not available here.")
        try:
            await self._claim_slot(run)
            return await self.place(run, strategy)
        except (TooManyActiveRuns, LineFull):
            await self._drop(run)
            raise

    async def count_turn(self, run: RunRecord) -> RunRecord:
        """Count the turn of a queued run that has just got its group, where the group counts them."""
        assert run.group_id is not None
        group = await self.store.get_group(run.tenant_id, run.group_id)
        if group.manager_type not in COUNTED_TURNS:
            return run
        counted, _ = await self._count_turn(run, group)
        return counted

    def held(self, owner: str | None = None) -> dict[str, Any]:
        """What makes a run this worker's (or `owner`'s) from the start: its driver need not write
        it before its first byte."""
        return {
            "status": "running",
            "lease_owner": owner if owner is not None else self.lease.owner,
            "lease_expires_at": time.time() + self.lease.ttl_s,
        }

    def _new_run(
        self, group: GroupRecord, request: MessageRequest, *, streaming: bool, idempotency_key: str | None
    ) -> RunRecord:
        inputs = request.input_messages()
        answers = approval_answers(group, inputs)
        run = RunRecord(
            tenant_id=group.tenant_id,
            id=new_id("run"),
            created_at=now_iso(),
            agent_id=ManagerSettings.of(group.manager_config).manager_agent_id or group.agent_ids[0],
            group_id=group.id,
            background=request.background,
            metadata={"run_type": "send_message_streaming" if streaming else "send_message", "group_id": group.id},
            request_config={
                "use_assistant_message": request.use_assistant_message,
                "assistant_message_tool_name": request.assistant_message_tool_name,
                "assistant_message_tool_kwarg": request.assistant_message_tool_kwarg,
                "include_return_message_types": request.include_return_message_types,
            },
            idempotency_key=idempotency_key,
            traceparent=tracer().new_trace(),
            inputs=[m.model_dump(mode="json") for m in inputs if isinstance(m, MessageCreate)],
            options={
                "stream_tokens": request.stream_tokens and streaming,
                "max_steps": request.max_steps,
                "include_return_message_types": request.include_return_message_types,
                **({"approvals": answers, "continues": _dump(group.pending_approval)} if answers else {}),
            },
        )
        if request.multitask_strategy != "reject":
            return waiting(run, request.multitask_strategy)  # held by whoever starts it
        return run.model_copy(update=self.hold(run))

    async def _drop(self, run: RunRecord) -> None:
        """Forget a run refused after it was written (its record, and its idempotency key if any)."""
        await self.store.delete_run(run.tenant_id, run.id)
        if run.idempotency_key is not None:
            await self.store.forget_idempotency_key(run.tenant_id, run.idempotency_key, run.id)

    async def _count_turn(self, run: RunRecord, group: GroupRecord) -> tuple[RunRecord, GroupRecord]:
        """Bump the group's `turns_counter` for this run (the group is claimed: no other run races it)
        and remember the run's number, so a re-driven run paces its sleeptime agents the same way.
        Returns the run and the group as now stored."""
        current = await self.store.get_group(group.tenant_id, group.id)
        number = current.turns_counter + 1
        counted = current.model_copy(update={"turns_counter": number})
        await self.store.put_group(counted)
        run = run.model_copy(update={"options": {**run.options, "turn_number": number}})
        return await self.store.update_run(run, expect_version=run.version), counted

    async def _load_agent(self, tenant_id: str, group_id: str, agent_id: str) -> AgentRecord:
        try:
            agent = await self.store.get_agent(tenant_id, agent_id)
        except NotFound:
            raise BadRequest(f"Group {group_id} names agent {agent_id}, which no longer exists.") from None
        self.resolve(agent)
        return agent


def _dump(pending: PendingApproval | None) -> dict[str, Any] | None:
    return pending.model_dump(mode="json") if pending is not None else None
