"""Double-texting: what a send does when its group is busy (`multitask_strategy`, LangGraph's words).

- `reject` (the default) is the plain send: 409 naming the active run. It never comes here.
- `enqueue`: the run is stored `created` and queued, joins the end of the group's line and
  starts when every run ahead of it has ended, in arrival order.
- `interrupt`: the run becomes the one that takes the group next and the active run is
  cancelled (its committed steps stay in history, its stream ends `cancelled`); the run starts
  once that run has ended, over the history as it then stands.
- `rollback`: as `interrupt`, and before the run starts the cancelled run's messages (its input
  included) leave the group's history and its record gets `metadata.rolled_back_by`.

One run per group at a time still rests on the group's claim alone: a waiting run starts only
after it has been made the holder (`queue.promote`), which happens only once no live run holds
the group. Starting it is a compare-and-set on its record (`queued` true -> false), so of
everyone who may try (its sender, the end of the run ahead, the recovery sweep) exactly one
starts it. Who tries: a run's sender while it waits (a streaming or plain send holds its
request open), whoever ends a run of the group (in process, or the workflow's Finish, which
starts background runs only: a foreground run belongs to its sender's process), and the
recovery sweep for a run whose sender and predecessors are gone.

A queued run holds one of the tenant's active-run slots from its send: it is an active run.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from chorus.engine import events
from chorus.errors import ChorusError, NotFound
from chorus.runs.ending import ending
from chorus.runs.finisher import update_run
from chorus.runs.frames import PING_FRAME
from chorus.runs.log import run_log
from chorus.runs.options import RunOptions
from chorus.runs.queue import join, leave, promote
from chorus.schemas.requests import MultitaskStrategy
from chorus.settings import Settings
from chorus.store.base import Store
from chorus.store.records import RunRecord

logger = logging.getLogger(__name__)

Begin = Callable[[RunRecord], Awaitable[None]]
"""Executes a run that has just been started (in this process, or its workflow)."""
Cancel = Callable[[str, list[RunRecord]], Awaitable[Any]]
"""Cancels running runs as a cancel request does."""
Hold = Callable[[RunRecord], dict[str, Any]]
"""The record changes that make a starting run this worker's (status and lease), or none."""

ROLLED_BACK_BY = "rolled_back_by"
"""`metadata` key of a rolled-back run: the run whose `rollback` send undid it."""
INTERRUPTING = frozenset({"interrupt", "rollback"})
POLL_S = 0.05
POLL_MAX_S = 1.0
"""How often a waiting sender looks at its run and its group's line, at first and at most."""


def is_queued(run: RunRecord) -> bool:
    return RunOptions.of(run).queued and not run.is_terminal


def waiting(run: RunRecord, strategy: MultitaskStrategy) -> RunRecord:
    """The record of a new run that waits for its group until started."""
    return run.model_copy(update={"options": {**run.options, "multitask_strategy": strategy, "queued": True}})


class DoubleTexting:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        begin: Begin,
        *,
        hold: Hold | None = None,
        cancel: Cancel | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.begin = begin
        self.hold = hold
        self.cancel = cancel
        self._waiters: dict[str, asyncio.Event] = {}
        """Queued runs whose sender waits in this process: started here, woken at once."""

    # a send
    async def place(self, run: RunRecord, strategy: MultitaskStrategy) -> RunRecord:
        """Put a stored run (its slot held) in its group's line, or ahead of it; start it if the
        group is free. Returns the run as stored (still queued if it has to wait)."""
        group_id = run.group_id
        assert group_id is not None
        if strategy in INTERRUPTING:
            holder = await self.store.claim_group(run.tenant_id, group_id, run.id)
            if holder is None:
                earlier = (await self.store.get_group_queue(run.tenant_id, group_id)).next
                if earlier is not None:
                    await self.drop(run.tenant_id, earlier)  # an interrupting send not yet started: this one wins
                await self.start(run)
                return await self.store.get_run(run.tenant_id, run.id)
            if strategy == "rollback":
                run = await update_run(self.store, run, lambda r: _with_options(r, rolls_back=holder))
            displaced = await join(self.store, run, front=True)
            if displaced is not None:
                await self.drop(run.tenant_id, displaced)  # an earlier interrupting send: it never starts
            await self._interrupt(run.tenant_id, holder)
        else:
            await join(self.store, run, front=False)
        await self.serve(run.tenant_id, group_id, own=run.id)
        return await self.store.get_run(run.tenant_id, run.id)

    async def _interrupt(self, tenant_id: str, run_id: str) -> None:
        try:
            run = await self.store.get_run(tenant_id, run_id)
        except NotFound:
            return
        if is_queued(run):
            await self.drop(tenant_id, run_id)
        elif not run.is_terminal and self.cancel is not None:
            await self.cancel(tenant_id, [run])

    async def wait_turn(self, tenant_id: str, run_id: str) -> RunRecord:
        """Wait, as the run's sender, until the queued run has started (here or elsewhere) or ended;
        starts it here when it gets the group. Returns the run as then stored. A hand-over in this
        process wakes it at once; one in another process is seen by polling, backing off from
        `POLL_S` to `POLL_MAX_S` so a long line costs few reads."""
        wake = self._waiters.setdefault(run_id, asyncio.Event())
        poll_s = POLL_S
        try:
            while True:
                run = await self.store.get_run(tenant_id, run_id)
                if not is_queued(run):
                    return run
                await self.take_turn(run)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), poll_s)
                wake.clear()
                poll_s = min(poll_s * 2, POLL_MAX_S)
        finally:
            self._waiters.pop(run_id, None)

    async def stream(
        self, run: RunRecord, follow: Callable[[], AsyncIterator[bytes]], *, include_pings: bool
    ) -> AsyncIterator[bytes]:
        """The stream of a send whose run waits for its group: a ping naming the run first (so the
        client can cancel or resume it), pings while it waits if asked, then `follow()`: the run."""
        yield b'data: {"message_type":"ping","run_id":"' + run.id.encode() + b'","status":"created"}\n\n'
        turn = asyncio.ensure_future(self.wait_turn(run.tenant_id, run.id))
        try:
            while not turn.done():
                await asyncio.wait({turn}, timeout=self.settings.ping_interval_s)
                if not turn.done() and include_pings:
                    yield PING_FRAME
            turn.result()
        finally:
            turn.cancel()
        async for chunk in follow():
            yield chunk

    async def take_turn(self, run: RunRecord) -> bool:
        """Start `run` if it is its turn; True if this call started it. A run that is in no line
        and holds no group (its sender died between storing and queueing it) joins the line."""
        assert run.group_id is not None
        if run.cancel_requested:
            await self.end_unstarted(run)
            return False
        line = await self.store.get_group_queue(run.tenant_id, run.group_id)
        if run.id in line:
            return await self.serve(run.tenant_id, run.group_id, own=run.id) == run.id
        if await self.store.claim_group(run.tenant_id, run.group_id, run.id) is None:
            return await self.start(run)
        await join(self.store, run, front=False)
        return False

    # the group changes hands
    async def advance(self, tenant_id: str, group_id: str | None) -> None:
        """After a run of the group ended: hand the group to the next run in line. Never raises:
        the recovery sweep hands it on if this fails."""
        if group_id is None:
            return
        try:
            await self.serve(tenant_id, group_id)
        except Exception:
            logger.exception("could not hand group %s on to its next run", group_id)

    async def serve(self, tenant_id: str, group_id: str, *, own: str | None = None, anyone: bool = False) -> str | None:
        """Give the group to its line's head if it is free, and start that run if this process may:
        its own run (`own`, errors raised to the sender), one whose sender waits here, a background
        run, or any (`anyone`: the recovery sweep). A foreground run belongs to its sender's process.
        Returns the id of the run started here, if any."""
        head = await promote(self.store, tenant_id, group_id)
        if head is None:
            return None
        if head.id == own:
            return head.id if await self.start(head) else None
        if not (anyone or head.background or head.id in self._waiters):
            return None
        try:
            started = await self.start(head)
        except Exception:
            logger.exception("could not start queued run %s", head.id)
            return None
        wake = self._waiters.get(head.id)
        if wake is not None:
            wake.set()  # its sender here follows it now
        return head.id if started else None

    async def start(self, run: RunRecord) -> bool:
        """Start a run that holds its group, once: roll back what it undoes, then take it out of
        waiting with a compare-and-set; the winner executes it. True if this call started it."""
        paused = RunOptions.of(run).rolls_back
        if paused is not None:
            await self.roll_back(run.tenant_id, paused, by=run.id)
        changes = self.hold(run) if self.hold is not None else {}
        won = False

        def started(current: RunRecord) -> RunRecord:
            nonlocal won
            won = False
            if current.is_terminal or current.cancel_requested or not RunOptions.of(current).queued:
                return current
            won = True
            return _with_options(current, queued=False).model_copy(update=changes)

        stored = await update_run(self.store, run, started)
        if won:
            await self.begin(stored)
        return won

    async def roll_back(self, tenant_id: str, run_id: str, *, by: str) -> None:
        """Take an interrupted run's messages out of history and mark it rolled back (idempotent;
        the run has ended: its successor holds the group)."""
        try:
            victim = await self.store.get_run(tenant_id, run_id)
        except NotFound:
            return
        if victim.metadata.get(ROLLED_BACK_BY) is not None or not victim.is_terminal:
            return
        await self.store.delete_run_messages(tenant_id, run_id)
        if victim.group_id is not None:
            group = await self.store.get_group(tenant_id, victim.group_id)
            if group.pending_approval is not None and group.pending_approval.run_id == run_id:
                await self.store.put_group(group.model_copy(update={"pending_approval": None}))

        def marked(current: RunRecord) -> RunRecord:
            if current.metadata.get(ROLLED_BACK_BY) is not None:
                return current
            return current.model_copy(update={"metadata": {**current.metadata, ROLLED_BACK_BY: by}})

        await update_run(self.store, victim, marked)

    # cancelling
    async def drop(self, tenant_id: str, run_id: str) -> None:
        """Cancel a queued run: it never starts; one that started meanwhile is cancelled as any run."""
        run = await update_run(self.store, await self.store.get_run(tenant_id, run_id), _flag_cancel)
        if run.is_terminal:
            return
        if not RunOptions.of(run).queued:
            if self.cancel is not None:
                await self.cancel(tenant_id, [run])
            return
        await self.end_unstarted(run)

    async def end_unstarted(self, run: RunRecord) -> None:
        """End a cancelled run that never started: `stop_reason` and `[DONE]` with its terminal
        record, out of its group's line, the group handed on."""
        log = run_log(self.store, self.settings, run, await self.store.last_seq(run.tenant_id, run.id))
        log.emit(events.stop_reason("cancelled"))
        try:
            await log.close(ending("cancelled", self.settings.event_retention_s))
        except ChorusError:
            await log.abort()  # ended by another canceller first
        if run.group_id is not None:
            await leave(self.store, run.tenant_id, run.group_id, run.id)
            await self.store.release_group(run.tenant_id, run.group_id, run.id)
            await self.advance(run.tenant_id, run.group_id)

    # recovery
    async def revive(self, run: RunRecord) -> int:
        """The sweep's turn on a queued run whose sender may be gone: end it if it was cancelled,
        else give its group to the line's head if free and start that run. Returns runs started."""
        if run.group_id is None:
            return 0
        if run.cancel_requested:
            await self.end_unstarted(run)
            return 1
        line = await self.store.get_group_queue(run.tenant_id, run.group_id)
        if run.id in line:
            return int(await self.serve(run.tenant_id, run.group_id, anyone=True) is not None)
        return int(await self.take_turn(run))


def _with_options(run: RunRecord, **options: Any) -> RunRecord:
    return run.model_copy(update={"options": {**run.options, **options}})


def _flag_cancel(run: RunRecord) -> RunRecord:
    if run.is_terminal or run.cancel_requested:
        return run
    return run.model_copy(update={"cancel_requested": True})
