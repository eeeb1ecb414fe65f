"""Holding a run while a worker drives it: status `running`, the lease, the heartbeat watching both.

A worker holds its run by a lease its heartbeat renews once a third of it is used (a renewal
rewrites the run record; the beats between only read it, for a cancel or a takeover); losing
it to another worker stops this one before it writes again (`LeaseLost`). A workflow task takes no lease (its
workflow owns the run): its heartbeat only reads the stored run, so a cancel flag or a run
ended elsewhere stops the task's work at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from chorus.errors import ChorusError
from chorus.runs.finisher import update_run
from chorus.runs.lease import Lease, LeaseLost, RunCancelled
from chorus.runs.loading import LoadedRun
from chorus.runs.options import RunOptions
from chorus.store.base import Store
from chorus.store.records import RunRecord

logger = logging.getLogger(__name__)


class RunHolder:
    """Holds one loaded run for this worker; the one writer of `loaded.run` besides the finisher."""

    def __init__(self, store: Store, loaded: LoadedRun, lease: Lease) -> None:
        self.store = store
        self.loaded = loaded
        self.lease = lease
        self.lost = False
        """Another worker took the run over: nothing may be written any more."""
        self._seen_version = -1
        """The run's version at the heartbeat's last full read."""

    @property
    def run(self) -> RunRecord:
        return self.loaded.run

    @contextlib.asynccontextmanager
    async def holding(self) -> AsyncIterator[None]:
        """Hold the run (status `running`, the lease) while the body runs, watched by the heartbeat."""
        if self.lease.renew and not self.held_fresh():
            await self.update(lambda r: self._hold(r, status="running"))
        heartbeat = asyncio.create_task(self._heartbeat(), name=f"lease-{self.run.id}")
        try:
            yield
        finally:
            heartbeat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await heartbeat

    async def mark_running(self) -> None:
        """Status `running` (without taking a lease: a workflow task's run is owned by its workflow).
        A run that ended meanwhile (cancelled between the task's read and this write) stays ended."""
        await self.update(
            lambda r: r if r.status == "running" or r.is_terminal else r.model_copy(update={"status": "running"})
        )

    async def update(self, change: Callable[[RunRecord], RunRecord]) -> None:
        """Change the stored run (compare-and-set) and keep the loaded copy current."""
        self.loaded.run = await update_run(self.store, self.run, change)

    def check_cancel(self) -> None:
        """Raise why the run must stop, if it must: cancelled, or taken over by another worker."""
        if self.loaded.cancel.is_set():
            raise LeaseLost if self.lost else RunCancelled

    def _hold(self, run: RunRecord, **changes: Any) -> RunRecord:
        if run.lease_owner not in (None, self.lease.owner) and run.lease_expires_at > time.time():
            raise LeaseLost
        if RunOptions.of(run).in_execution:  # handed to an execution, which owns it without a lease
            raise LeaseLost
        if run.cancel_requested:
            self.loaded.cancel.set()
        return run.model_copy(
            update={"lease_owner": self.lease.owner, "lease_expires_at": time.time() + self.lease.ttl_s, **changes}
        )

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.lease.heartbeat_s)
            if not self.lease.renew or self._lease_left() > self.lease.ttl_s * 2 / 3:
                # a renewal rewrites the run record and its index entries (~10 write units); a read
                # (half a unit) sees a cancel as soon, so the lease is renewed only once a third is used
                await self._watch()
                continue
            try:
                await self.update(self._hold)
            except LeaseLost:
                self.lost = True
                self.loaded.cancel.set()
                return
            except ChorusError:
                logger.warning("run %s: heartbeat failed; retrying", self.run.id)

    def _lease_left(self) -> float:
        """Seconds this worker's lease has left (none unless it holds it)."""
        if self.run.lease_owner != self.lease.owner:
            return 0.0
        return self.run.lease_expires_at - time.time()

    def held_fresh(self) -> bool:
        """The run was created held by this worker, its lease far from expiry (a new run's first moments)."""
        run = self.run
        return (
            run.status == "running"
            and run.lease_owner == self.lease.owner
            and not run.cancel_requested
            and run.lease_expires_at - time.time() > self.lease.ttl_s / 2
        )

    async def _watch(self) -> None:
        """Read the stored run: a cancel flag or a run finished elsewhere (cancelled) stops this worker.

        A beat reads the run's version alone, a few bytes however large the run (its inputs may be
        hundreds of KB, read every second); only a version this worker has not seen, its own
        writes' or its last full read's, is worth reading the run for: every write of a run, a
        cancel, a takeover or an end elsewhere, increments it.

        Beats read eventually consistently (half the read units, each second of each turn). A
        cancel flag, a terminal status, a takeover and a hand-over never go back, so a stale read
        sees them at most about a second late, never falsely; meanwhile nothing depends on the beat
        for safety: the store's fence refuses any commit to an ended run, a step commits once
        whoever runs it, a closed log refuses appends, and a renewal is a versioned write that fails
        once another worker has taken the run (which it can do only once the lease expired, `ttl_s`
        after this worker's last renewal)."""
        if self.run.cancel_requested or self.run.is_terminal:  # seen by a write of this worker's
            self.loaded.cancel.set()
            return
        try:
            version = await self.store.run_version(self.run.tenant_id, self.run.id, consistent=False)
            if version <= max(self._seen_version, self.run.version):
                return
            run = await self.store.get_run(self.run.tenant_id, self.run.id, consistent=False)
        except ChorusError:
            logger.warning("run %s: could not read the run; watching on", self.run.id)
            return
        self._seen_version = run.version
        if self.lease.renew and (run.lease_owner not in (None, self.lease.owner) or RunOptions.of(run).in_execution):
            self.lost = True  # taken over (between renewals), or handed to an execution: stop as a failed renewal would
            self.loaded.cancel.set()
        if run.cancel_requested or run.is_terminal:
            self.loaded.cancel.set()
