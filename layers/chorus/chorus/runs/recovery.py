"""Recovering runs whose worker is gone: re-driven from their last committed step, or ended.

A run's lease expires when its worker dies. Any worker then adopts it: a run whose log is
complete only gets its terminal record; a run whose unfinished step killed every worker that
attempted it (`Settings.max_run_attempts`) is ended with an error instead of driven again;
any other is handed back, one incarnation later, to be driven from its last committed step.
Kept apart from starting, following and cancelling runs: it is given what it needs to know
about this worker (which runs it executes, how it submits one) rather than reaching into it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from chorus.engine import events
from chorus.errors import Conflict
from chorus.runs.attempts import RECOVERY, Deaths, deaths_after, last_doing, poisoned_message
from chorus.runs.executor import RemoteExecutor
from chorus.runs.finisher import end_with_error, set_terminal
from chorus.runs.lease import Lease
from chorus.runs.log import logged_stop, run_log
from chorus.runs.options import RunOptions
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import RunRecord

logger = logging.getLogger(__name__)


class RunRecovery:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        lease: Lease,
        *,
        is_active: Callable[[str], bool],
        submit: Callable[[RunRecord, int], None],
        remote: RemoteExecutor | None = None,
        orphan_grace_s: float = 10.0,
        revive: Callable[[RunRecord], Awaitable[int]] | None = None,
        advance: Callable[[str, str | None], Awaitable[None]] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.lease = lease
        self.is_active = is_active
        """Whether a run (by id) executes in this worker."""
        self.submit = submit
        """Drive a run here, continuing its log after the given `seq_id`."""
        self.remote = remote
        """Where background runs execute when set (their workflow recovers them)."""
        self.orphan_grace_s = orphan_grace_s
        """How old a never-leased `created` run must be before another worker adopts it."""
        self.revive = revive
        """Serve a queued run's group when its sender may be gone (see `chorus.runs.multitask`)."""
        self.advance = advance
        """Hand a group on to its next run in line once the sweep has ended the group's run: the
        line's head would otherwise wait for a later sweep, and then only once it is old enough."""
        self._sweeper: asyncio.Task[None] | None = None

    async def recover(self) -> int:
        """Re-drive unfinished runs whose worker is gone (lease expired); returns how many."""
        now = time.time()
        count = 0
        for run in await self.store.list_unfinished_runs(limit=1000):
            if RunOptions.of(run).queued:  # waiting for its group: never driven before it is started
                if self.revive is not None and _age_s(run) >= self.orphan_grace_s:
                    count += await self.revive(run)
                continue
            if self.is_active(run.id) or run.lease_expires_at > now:
                continue
            if self.remote is not None and run.background:
                if await self.remote.reconcile(run):  # its workflow recovers it; this only ends dead ones
                    count += 1
                    await self._hand_on(run)
                continue
            if run.lease_owner is None and run.status == "created" and _age_s(run) < self.orphan_grace_s:
                continue
            await self.recover_run(run)
            count += 1
        return count

    async def recover_run(self, run: RunRecord) -> None:
        """Adopt one run whose lease expired: end it, or drive it again from its last committed step."""
        stop = await logged_stop(self.store, run.tenant_id, run.id)
        retention_s = self.settings.event_retention_s
        if stop is not None:
            await set_terminal(self.store, run, stop, retention_s)  # its worker died after completing the log
            await self._hand_on(run)
            return
        last = await self.store.last_seq(run.tenant_id, run.id)
        deaths = await deaths_after(self.store, run)
        if deaths.count >= self.settings.max_run_attempts:
            await end_poisoned(self.store, self.settings, run, last, deaths, self.lease)
            await self._hand_on(run)
            return
        options = {**run.options, RECOVERY: deaths.as_option()}
        try:
            run = await self.store.update_run(
                run.model_copy(update={"incarnation": run.incarnation + 1, "lease_owner": None, "options": options}),
                expect_version=run.version,
            )
        except Conflict:
            return
        logger.warning("recovering run %s (incarnation %d) from its last committed step", run.id, run.incarnation)
        self.submit(run, last)

    async def _hand_on(self, run: RunRecord) -> None:
        if self.advance is not None:
            await self.advance(run.tenant_id, run.group_id)

    def start_sweeper(self, interval_s: float | None = None) -> None:
        """Recover orphaned runs now and then periodically (other workers may die too)."""

        async def sweep() -> None:
            while True:
                try:
                    await self.recover()
                except Exception:
                    logger.exception("recovery sweep failed")
                await asyncio.sleep(interval_s or self.lease.ttl_s)

        self._sweeper = asyncio.create_task(sweep(), name="chorus-recovery")

    async def stop_sweeper(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper


def _age_s(run: RunRecord) -> float:
    return time.time() - datetime.fromisoformat(run.created_at).timestamp()


async def end_poisoned(
    store: Store, settings: Settings, run: RunRecord, last: int, deaths: Deaths, lease: Lease
) -> bool:
    """End a run whose step killed every worker that attempted it, instead of driving it again:
    taken over first (compare-and-set on the run as read), so only one worker ends it; False if
    another worker took the run meanwhile."""
    held = {"lease_owner": lease.owner, "lease_expires_at": time.time() + lease.ttl_s}
    try:
        run = await store.update_run(run.model_copy(update=held), expect_version=run.version)
    except Conflict:
        return False
    doing = await last_doing(store, run, deaths.log_seq)
    detail = poisoned_message(deaths, doing.describe())
    logger.error("run %s: %s", run.id, detail)
    log = run_log(store, settings, run, last)
    if doing.message_ids:
        reason = "the worker running it stopped"
        marker = events.abandoned_attempt(
            run_id=run.id, step_id=doing.step_id, message_ids=list(doing.message_ids), reason=reason
        )
        log.emit(marker)
    await end_with_error(store, run, log, detail, settings.event_retention_s)
    return True
