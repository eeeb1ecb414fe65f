"""The runs of this worker, as the API routes use them: start, follow, cancel, recover.

`RunService` keeps the registry of runs executing in this process (their live logs and
cancel switches) and hands each new or adopted run's driver to the executor. The work of
each use lives in its own module: `starting` (everything a send can fail with, before the
first byte), `following` (SSE frames from memory or the store), `recovery` (orphaned runs);
cancelling is here, as it acts on the registry.
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

from chorus.errors import (
    ChorusError,
    Conflict,
    NotFound,
)
from chorus.llm.base import Model
from chorus.llm.resolve import resolve_model
from chorus.runs import following
from chorus.runs.driver import ModelResolver, RunDriver
from chorus.runs.executor import InProcessExecutor, RemoteExecutor
from chorus.runs.finisher import end_with_error, update_run
from chorus.runs.lease import Lease
from chorus.runs.loading import load_run
from chorus.runs.log import RunLog, run_log
from chorus.runs.multitask import DoubleTexting, is_queued
from chorus.runs.recovery import RunRecovery
from chorus.runs.starting import Preloaded, RunStarter
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import AgentRecord, Page, RunRecord
from chorus.tools.execution import ToolExecutor
from chorus.tools.executors import tool_executor_for
from chorus.tools.mcp_executor import McpToolExecutor
from chorus.tools.mcp_policy import policy_for

logger = logging.getLogger(__name__)

ACTIVE_STATUSES = ["created", "running"]


@dataclass(slots=True)
class ActiveRun:
    """A run executing in this process: its live log and its cancel switch."""

    run: RunRecord
    log: RunLog
    cancel: asyncio.Event
    loaded: Preloaded | None = None
    """The group and agents the send already read and validated (a new run), so the driver need
    not read them again before the first byte."""
    fresh: bool = False
    """A run no worker has started: it has no committed steps to restore."""


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
        self.mcp_executor = McpToolExecutor(policy_for(settings))
        """Calls the MCP servers' tools of this service's runs, under the settings' network policy."""
        ttl_s = lease_ttl_s if lease_ttl_s is not None else settings.lease_ttl_s
        self.lease = Lease(owner=f"worker-{uuid.uuid4()}", ttl_s=ttl_s, heartbeat_s=heartbeat_s)
        self._active: dict[str, ActiveRun] = {}
        self._cancels: set[asyncio.Task[Any]] = set()
        self.multitask = DoubleTexting(store, settings, self._begin, hold=self._hold_here, cancel=self.cancel)
        """Sends that wait for a busy group (`multitask_strategy`): their line, their start."""
        self.starter = RunStarter(
            store,
            settings,
            self.lease,
            self.resolve,
            hold=self._hold_here,
            launch=self._launch,
            place=self.multitask.place,
        )
        self.start_group_run = self.starter.start
        """Validate and start a run, or find the one an earlier request with the key started."""
        self.recovery = RunRecovery(
            store,
            settings,
            self.lease,
            is_active=lambda run_id: run_id in self._active,
            submit=self._submit,
            remote=remote,
            orphan_grace_s=orphan_grace_s,
            revive=self.multitask.revive,
            advance=self.multitask.advance,
        )

    def resolve(self, agent: AgentRecord) -> Model:
        """The agent's model: the injected resolver's (tests) or the handle's provider."""
        if self._resolver is not None:
            return self._resolver(agent)
        return resolve_model(agent.model, agent.metadata)

    async def _begin(self, run: RunRecord) -> None:
        """Execute a queued run that has just got its group (its turn counted where the group counts)."""
        await self._launch(await self.starter.count_turn(run))

    def _hold_here(self, run: RunRecord) -> dict[str, Any]:
        """A run that starts in this process is held by it from the start (a new one, or a queued one
        starting); one started directly, by the lease its first attempt is sent with."""
        if not self.is_remote(run):
            return self.starter.held()
        owner = self.remote.first_owner() if self.remote is not None else None
        return {} if owner is None else self.starter.held(owner)

    def is_remote(self, run: RunRecord) -> bool:
        """Background runs execute remotely when a remote executor is configured."""
        return self.remote is not None and run.background

    async def _launch(self, run: RunRecord, loaded: Preloaded | None = None) -> None:
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

    def _submit(
        self, run: RunRecord, base_seq: int = 0, *, loaded: Preloaded | None = None, fresh: bool = False
    ) -> None:
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
                loaded_run = await load_run(self.store, run, active.cancel, preloaded=preloaded)
            except NotFound as exc:
                await self._fail_unrunnable(active, f"The run cannot continue: {exc.detail}")
                return
            driver = RunDriver(
                self.store,
                self.resolve,
                loaded_run,
                active.log,
                lease=self.lease,
                retention_s=self.settings.event_retention_s,
                fanout_concurrency=self.settings.fanout_concurrency,
                spawn=self._launch,
                tool_timeout_s=self.settings.tool_timeout_s,
                tool_executor=self.tool_executor,
                mcp_executor=self.mcp_executor,
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
        """See `following.events_of`."""
        return await following.events_of(self.store, tenant_id, run_id)

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
        await following.check_resumable(self.store, tenant_id, run_id)
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
        active = self._active.get(run_id)
        local = active.log if active is not None and active.run.tenant_id == tenant_id else None
        return following.follow(
            self.store,
            local,
            tenant_id,
            run_id,
            after_seq,
            ping_interval=self.settings.ping_interval_s if include_pings else None,
            poll_interval=poll_interval,
            batch_size=batch_size,
        )

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
