"""Starting, following, cancelling and recovering runs: what the API routes call.

Everything that can fail with an HTTP error (unknown group, manager type
not runnable yet, an agent whose model cannot run, a busy group, a reused
idempotency key with another body) is decided in `start_group_run`, before
the response begins; after the first byte, failures travel as stop reasons
inside the stream.

Order of a send, and why:
1. the run record is created (`created`);
2. the `Idempotency-Key`, if any, is remembered atomically for it; a key
   already pointing at another run means this is a retry: our record is
   dropped and the caller follows that run instead (invariant 8);
3. the group is claimed for the run; a group held by another live run is a
   409 naming it (invariant 7), and our record and key are dropped, so a
   retry later may start afresh;
4. one of the tenant's active-run slots is claimed; a tenant whose slots are
   all held by live runs gets 429 with `Retry-After`, and the group, our
   record and key are dropped as for a 409;
5. the driver is submitted to the executor.

A send with a `multitask_strategy` other than `reject` takes another path after step 2: its
record is stored queued, it claims its tenant slot, then `chorus.runs.multitask` places it in
the group's line (or ahead of it) and starts it when the group is its.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Literal

import orjson

from chorus.clock import now_iso
from chorus.errors import (
    BadRequest,
    ChorusError,
    Conflict,
    NotFound,
    RunExpired,
    TooManyActiveRuns,
)
from chorus.ids import new_id
from chorus.llm.base import Model
from chorus.llm.resolve import resolve_model
from chorus.runs.approvals import approval_answers
from chorus.runs.driver import ModelResolver, RunDriver
from chorus.runs.executor import InProcessExecutor, RemoteExecutor
from chorus.runs.finisher import end_with_error, update_run
from chorus.runs.frames import DONE, frame
from chorus.runs.idempotency import fingerprint, remember_key
from chorus.runs.lease import Lease
from chorus.runs.loading import load_plan, members
from chorus.runs.log import RunLog, run_log
from chorus.runs.multitask import DoubleTexting, is_queued, waiting
from chorus.runs.queue import LineFull
from chorus.runs.recovery import RunRecovery
from chorus.runs.tailer import tail_memory, tail_store
from chorus.schemas.requests import MessageCreate, MessageRequest, MultitaskStrategy
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, Page, RunRecord
from chorus.tools.execution import ToolExecutor
from chorus.tools.executors import tool_executor_for

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ["created", "running"]
RETRY_AFTER_S = 5
"""What a 429 for a tenant at its active-run limit tells the client to wait before sending again."""
COUNTED_TURNS = frozenset({"sleeptime", "voice_sleeptime"})
"""Manager types whose groups count their runs (`turns_counter`), as Letta does."""


@dataclass(slots=True)
class ActiveRun:
    """A run executing in this process: its live log and its cancel switch."""

    run: RunRecord
    log: RunLog
    cancel: asyncio.Event
    loaded: Loaded | None = None
    """The group and agents the send already read and validated (a new run), so the driver need
    not read them again before the first byte."""
    fresh: bool = False
    """A run no worker has started: it has no committed steps to restore."""


@dataclass(frozen=True, slots=True)
class Loaded:
    group: GroupRecord
    agents: dict[str, AgentRecord]


@dataclass(frozen=True, slots=True)
class Started:
    """What a send produced: the run, and whether this request started it or retried an earlier one."""

    run: RunRecord
    replay: bool = False


class RunService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        executor: InProcessExecutor | None = None,
        resolver: ModelResolver | None = None,
        *,
        remote: RemoteExecutor | None = None,
        lease_ttl_s: float | None = None,
        heartbeat_s: float = 1.0,
        orphan_grace_s: float = 10.0,
        tool_executor: ToolExecutor | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.executor = executor or InProcessExecutor()
        self.remote = remote
        """Where background runs execute when set (Step Functions on AWS); else in this process."""
        self._resolver = resolver
        self.tool_executor = tool_executor if tool_executor is not None else tool_executor_for(settings)
        """Runs every custom tool call of this service's runs; chosen once, from the settings unless given."""
        ttl_s = lease_ttl_s if lease_ttl_s is not None else settings.lease_ttl_s
        self.lease = Lease(owner=f"worker-{uuid.uuid4()}", ttl_s=ttl_s, heartbeat_s=heartbeat_s)
        self._active: dict[str, ActiveRun] = {}
        self._cancels: set[asyncio.Task[Any]] = set()
        self.multitask = DoubleTexting(store, settings, self._begin, hold=self._hold_here, cancel=self.cancel)
        """Sends that wait for a busy group (`multitask_strategy`): their line, their start."""
        self.recovery = RunRecovery(
            store,
            settings,
            self.lease,
            is_active=lambda run_id: run_id in self._active,
            submit=self._submit,
            remote=remote,
            orphan_grace_s=orphan_grace_s,
            revive=self.multitask.revive,
        )

    def resolve(self, agent: AgentRecord) -> Model:
        """The agent's model: the injected resolver's (tests) or the handle's provider."""
        if self._resolver is not None:
            return self._resolver(agent)
        return resolve_model(agent.model, agent.metadata)

    # starting
    async def start_group_run(
        self,
        tenant_id: str,
        group_id: str,
        request: MessageRequest,
        *,
        streaming: bool,
        idempotency_key: str | None = None,
    ) -> Started:
        """Validate and start a run, or find the run an earlier request with the same key started."""
        group = await self.store.get_group(tenant_id, group_id)
        agents = {agent_id: await self._load_agent(tenant_id, group_id, agent_id) for agent_id in members(group)}
        inputs = request.input_messages()
        answers = approval_answers(group, inputs)
        run = RunRecord(
            tenant_id=tenant_id,
            id=new_id("run"),
            created_at=now_iso(),
            agent_id=group.manager_config.get("manager_agent_id") or group.agent_ids[0],
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
            inputs=[m.model_dump(mode="json") for m in inputs if isinstance(m, MessageCreate)],
            options={
                "stream_tokens": request.stream_tokens and streaming,
                "max_steps": request.max_steps,
                "include_return_message_types": request.include_return_message_types,
                **({"approvals": answers, "continues": group.pending_approval} if answers else {}),
            },
        )
        strategy = request.multitask_strategy
        if strategy != "reject":
            run = waiting(run, strategy)
        elif not self.is_remote(run):
            # held by this worker from the start: the driver need not write the run before its first byte
            held = {
                "status": "running",
                "lease_owner": self.lease.owner,
                "lease_expires_at": time.time() + self.lease.ttl_s,
            }
            run = run.model_copy(update=held)
        await self.store.put_run(run)
        if idempotency_key is not None:
            earlier = await remember_key(
                self.store, run, idempotency_key, fingerprint(group_id, request), self.settings.event_retention_s
            )
            if earlier is not None:
                return Started(earlier, replay=True)
        if strategy != "reject":
            return Started(await self._place(run, strategy, idempotency_key))
        holder = await self.store.claim_group(tenant_id, group_id, run.id)
        if holder is not None:
            await self.store.delete_run(tenant_id, run.id)
            if idempotency_key is not None:
                await self.store.forget_idempotency_key(tenant_id, idempotency_key, run.id)
            raise Conflict(
                f"Group {group_id} already has an active run ({holder}); resume or cancel it first.", run_id=holder
            )
        limit = self.settings.max_active_runs_per_tenant
        if not await self.store.claim_run_slot(tenant_id, run.id, limit):
            await self.store.release_group(tenant_id, group_id, run.id)
            await self.store.delete_run(tenant_id, run.id)
            if idempotency_key is not None:
                await self.store.forget_idempotency_key(tenant_id, idempotency_key, run.id)
            raise TooManyActiveRuns(
                f"This tenant already has {limit} active runs, the most it may have at once; "
                "wait for one to finish (or cancel one) and send again.",
                retry_after_s=RETRY_AFTER_S,
            )
        loaded = Loaded(group, agents)
        if group.manager_type in COUNTED_TURNS:
            run, counted = await self._count_turn(run, group)
            loaded = Loaded(counted, agents)
        await self._launch(run, loaded)
        return Started(run)

    async def _place(self, run: RunRecord, strategy: MultitaskStrategy, idempotency_key: str | None) -> RunRecord:
        """A double-texting send after its record and key: its tenant slot first (a queued run is an
        active run), then its place in the group's line; refused, it leaves nothing behind."""
        limit = self.settings.max_active_runs_per_tenant
        try:
            if not await self.store.claim_run_slot(run.tenant_id, run.id, limit):
                raise TooManyActiveRuns(
                    f"This tenant already has {limit} active runs, the most it may have at once; "
                    "wait for one to finish (or cancel one) and send again.",
                    retry_after_s=RETRY_AFTER_S,
                )
            return await self.multitask.place(run, strategy)
        except (TooManyActiveRuns, LineFull):
            await self.store.delete_run(run.tenant_id, run.id)
            if idempotency_key is not None:
                await self.store.forget_idempotency_key(run.tenant_id, idempotency_key, run.id)
            raise

    async def _begin(self, run: RunRecord) -> None:
        """Execute a queued run that has just got its group (counting its turn where the group counts)."""
        if run.group_id is not None:
            group = await self.store.get_group(run.tenant_id, run.group_id)
            if group.manager_type in COUNTED_TURNS:
                run, _ = await self._count_turn(run, group)
        await self._launch(run)

    def _hold_here(self, run: RunRecord) -> dict[str, Any]:
        """A queued run that starts in this process is held by it from the start, like a new one."""
        if self.is_remote(run):
            return {}
        return {
            "status": "running",
            "lease_owner": self.lease.owner,
            "lease_expires_at": time.time() + self.lease.ttl_s,
        }

    def is_remote(self, run: RunRecord) -> bool:
        """Background runs execute remotely when a remote executor is configured."""
        return self.remote is not None and run.background

    async def _launch(self, run: RunRecord, loaded: Loaded | None = None) -> None:
        """Execute a new run: remotely, or here. A run that cannot be started is ended, never left hanging."""
        if self.remote is None or not run.background:
            self._submit(run, loaded=loaded, fresh=True)
            return
        try:
            await self.remote.start(run)
        except Exception as exc:
            logger.exception("run %s could not be started", run.id)
            detail = exc.detail if isinstance(exc, ChorusError) else "The run's workflow could not be started."
            await end_with_error(
                self.store, run, run_log(self.store, self.settings, run, 0), detail, self.settings.event_retention_s
            )
            raise

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

    def _submit(self, run: RunRecord, base_seq: int = 0, *, loaded: Loaded | None = None, fresh: bool = False) -> None:
        """Create the run's log and hand its driver to the executor (loading group and agents there)."""
        log = run_log(self.store, self.settings, run, base_seq)
        active = ActiveRun(run, log, asyncio.Event(), loaded, fresh)
        self._active[run.id] = active
        self.executor.submit(run.id, self._execute(active))

    async def _execute(self, active: ActiveRun) -> None:
        run = active.run
        try:
            try:
                loaded = active.loaded
                preloaded = (loaded.group, loaded.agents) if loaded is not None else None
                plan = await load_plan(self.store, run, active.cancel, preloaded=preloaded)
            except NotFound as exc:
                await self._fail_unrunnable(active, f"The run cannot continue: {exc.detail}")
                return
            driver = RunDriver(
                self.store,
                self.resolve,
                plan,
                active.log,
                lease=self.lease,
                retention_s=self.settings.event_retention_s,
                fanout_concurrency=self.settings.fanout_concurrency,
                spawn=self._launch,
                tool_timeout_s=self.settings.tool_timeout_s,
                tool_executor=self.tool_executor,
            )
            await driver.execute(fresh=active.fresh)
        finally:
            self._active.pop(run.id, None)
        await self.multitask.advance(run.tenant_id, run.group_id)

    async def _fail_unrunnable(self, active: ActiveRun, detail: str) -> None:
        await end_with_error(self.store, active.run, active.log, detail, self.settings.event_retention_s)

    async def wait_terminal(self, tenant_id: str, run_id: str, poll_s: float = 0.05) -> RunRecord:
        """Wait until the run is terminal: on its task if it runs here, else by polling the store."""
        active = self._active.get(run_id)
        if active is not None:
            with contextlib.suppress(Exception):
                await self.executor.wait(run_id)
        while True:
            run = await self.store.get_run(tenant_id, run_id)
            if run.is_terminal:
                return run
            await asyncio.sleep(poll_s)

    async def events_of(self, tenant_id: str, run_id: str) -> list[dict[str, Any]]:
        """All events of a finished run's log (the `[DONE]` sentinel left out)."""
        rows = await self.store.read_events(tenant_id, run_id, 0, 1_000_000)
        return [orjson.loads(data) for _, data in rows if data.encode() != DONE]

    async def resume(
        self,
        tenant_id: str,
        run_id: str,
        *,
        after_seq: int,
        include_pings: bool,
        poll_interval: float,
        batch_size: int,
    ) -> AsyncIterator[bytes]:
        """Check the run may be resumed (404 / 400 / 410), then follow it from `after_seq`."""
        run = await self.store.get_run(tenant_id, run_id)
        if not run.background:
            raise BadRequest("Run was not created in background mode, so it cannot be resumed.")
        if run.is_terminal and run.expires_at is not None and run.expires_at < time.time():
            raise RunExpired(f"The event log of run {run_id} has expired.")
        return self.follow(
            tenant_id,
            run_id,
            after_seq,
            include_pings=include_pings,
            poll_interval=poll_interval,
            batch_size=batch_size,
        )

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
        """SSE frames of a run after `after_seq`: live from memory if it runs here, else from the store."""
        ping = self.settings.ping_interval_s if include_pings else None
        active = self._active.get(run_id)
        if active is not None and active.run.tenant_id == tenant_id:
            return self._follow_local(active.log, tenant_id, run_id, after_seq, ping, batch_size)
        return tail_store(
            self.store,
            tenant_id,
            run_id,
            after_seq,
            batch_size=batch_size,
            poll_interval=poll_interval,
            ping_interval=ping,
        )

    async def _follow_local(
        self, log: RunLog, tenant_id: str, run_id: str, after_seq: int, ping: float | None, batch_size: int
    ) -> AsyncIterator[bytes]:
        cursor = after_seq
        while cursor < log.base_seq:
            rows = await self.store.read_events(tenant_id, run_id, cursor, min(batch_size, log.base_seq - cursor))
            if not rows:
                break
            cursor = rows[-1][0]
            yield b"".join(frame(seq, data.encode()) for seq, data in rows)
        async for chunk in tail_memory(log, max(cursor, log.base_seq), ping):
            yield chunk

    # cancelling
    async def cancel(self, tenant_id: str, runs: list[RunRecord]) -> dict[str, str]:
        """Flag each run cancelled; runs executing here stop at their next chunk, orphans are finished now."""
        out = {}
        for run in runs:
            flagged = await self._flag_cancel(run)
            out[run.id] = "cancelled"
            if is_queued(flagged):
                await self.multitask.end_unstarted(flagged)  # never started: nothing runs to stop
            elif self.is_remote(run) and self.remote is not None:
                await self.remote.cancel(run)
                await self.multitask.advance(run.tenant_id, run.group_id)
            elif not self.cancel_local(run.id):
                current = await self.store.get_run(tenant_id, run.id)
                if not current.is_terminal and current.lease_expires_at < time.time():
                    await self.recovery.recover_run(current)
        return out

    async def _flag_cancel(self, run: RunRecord) -> RunRecord:
        def flagged(current: RunRecord) -> RunRecord:
            if current.is_terminal or current.cancel_requested:
                return current
            return current.model_copy(update={"cancel_requested": True})

        return await update_run(self.store, run, flagged)

    async def cancel_active(
        self, tenant_id: str, owner: Literal["group", "agent"], owner_id: str, run_ids: list[str] | None
    ) -> dict[str, str]:
        """Cancel the group's or agent's active runs (only `run_ids` if given); 409 when there are none."""
        key = {"group_id": owner_id} if owner == "group" else {"agent_id": owner_id}
        active = await self.active_runs(tenant_id, **key)
        if run_ids:
            active = [r for r in active if r.id in set(run_ids)]
        if not active:
            raise Conflict(f"CONFLICT: No active runs to cancel for {owner} {owner_id}")
        active.sort(key=lambda r: not is_queued(r))  # the waiting first: none starts as the active one ends
        return await self.cancel(tenant_id, active)

    def cancel_soon(self, tenant_id: str, run: RunRecord) -> None:
        """Cancel a run from a callback that cannot wait (a queued run's sender went away)."""
        task = asyncio.ensure_future(self.cancel(tenant_id, [run]))
        self._cancels.add(task)
        task.add_done_callback(self._cancels.discard)

    async def active_runs(
        self, tenant_id: str, *, group_id: str | None = None, agent_id: str | None = None
    ) -> list[RunRecord]:
        page = Page(limit=1000, order="asc")
        return await self.store.list_runs(
            tenant_id, page, group_id=group_id, agent_id=agent_id, statuses=ACTIVE_STATUSES
        )

    def cancel_local(self, run_id: str) -> bool:
        """Ask a run executing here to stop; False if it is not running here."""
        active = self._active.get(run_id)
        if active is None:
            return False
        active.cancel.set()
        return True

    # recovery
    async def recover(self) -> int:
        """Re-drive unfinished runs whose worker is gone (see `RunRecovery.recover`); returns how many."""
        return await self.recovery.recover()

    def start_sweeper(self, interval_s: float | None = None) -> None:
        """Recover orphaned runs now and then periodically (other workers may die too)."""
        self.recovery.start_sweeper(interval_s)

    async def shutdown(self) -> None:
        await self.recovery.stop_sweeper()
        await self.executor.shutdown()
        await asyncio.gather(*(a.log.abort() for a in list(self._active.values())), return_exceptions=True)
