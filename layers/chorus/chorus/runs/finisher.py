"""Ending a run: its last events, `[DONE]` written with the terminal record, its group released.

The driver ends the runs it drove; the workflow's Finish task ends runs whose steps ran in
other Lambdas. Both end them here, from what the run reports at its end (`Tally`), so a run
ends the same way whoever ends it, and nothing needs a driver just to end a run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from chorus.engine import events
from chorus.errors import ChorusError, Conflict, LogMoved, ModelError, ModelRateLimited, ModelTimeout
from chorus.runs.ending import ending
from chorus.runs.log import RunLog, logged_stop
from chorus.store.base import Store
from chorus.store.records import RunRecord
from chorus.tracing import tracer
from chorus.vocabulary import FAILED_STOP_REASONS, RunFailure, Usage

logger = logging.getLogger(__name__)

MOVED_ATTEMPTS = 20
"""How often an outside finisher starts again after the run's own writer: each time that writer
appended a batch in between, and it stops at its next heartbeat, so a few suffice."""


async def update_run(store: Store, run: RunRecord, change: Callable[[RunRecord], RunRecord]) -> RunRecord:
    """Apply `change` to the stored run with compare-and-set, re-reading on conflicts; returns the run as
    stored. A change that returns the run unchanged writes nothing."""
    for _ in range(50):
        changed = change(run)
        if changed is run:
            return run
        try:
            return await store.update_run(changed, expect_version=run.version)
        except Conflict:
            run = await store.get_run(run.tenant_id, run.id)
    raise ChorusError(f"run {run.id} is updated too often to write")


def error_type_of(exc: ModelError) -> str:
    if isinstance(exc, ModelRateLimited):
        return "llm_rate_limit"
    if isinstance(exc, ModelTimeout):
        return "llm_timeout"
    return "llm_error"


@dataclass(frozen=True, slots=True)
class Tally:
    """What a run reports at its end: tokens, steps, the background runs it started, its first token."""

    usage: Usage = field(default_factory=Usage)
    step_count: int = 0
    children: tuple[str, ...] = ()
    ttft_ns: int | None = None

    def usage_event(self, run_id: str) -> dict[str, Any]:
        u = self.usage
        return events.usage_statistics(
            prompt_tokens=u.prompt_tokens,
            completion_tokens=u.completion_tokens,
            step_count=self.step_count,
            run_ids=[run_id, *self.children],
            cached_input_tokens=u.cached_input_tokens,
            cache_write_tokens=u.cache_write_tokens,
            reasoning_tokens=u.reasoning_tokens,
        )


class RunFinisher:
    """Ends runs written through one log."""

    def __init__(
        self, store: Store, log: RunLog, retention_s: float, reopen: Callable[[int], RunLog] | None = None
    ) -> None:
        self.store = store
        self.log = log
        self.retention_s = retention_s
        self.reopen = reopen
        """For a finisher that is not the log's writer (it ends a run from outside, after a cancel):
        a log writer continuing after a given seq_id, to start again from when the run's own
        writer, still streaming, appended first."""

    async def finish(
        self, run: RunRecord, stop: str, error: RunFailure | None, tally: Tally, duration_ns: Callable[[], int]
    ) -> RunRecord:
        """End the run: stop reason, error or usage, then `[DONE]` written with the terminal
        record in one transaction, and the group released; returns the run as it ended.
        A run another worker finished meanwhile (its log closed) is left as that worker ended it."""
        last_events = _last_events(run, stop, error, tally)
        try:
            for event in last_events:
                self.log.emit(event)
        except Exception:
            logger.exception("could not write the end of run %s", run.id)
            stop = stop if stop in FAILED_STOP_REASONS else "error"
        try:
            ended = await self._close(run, last_events, self._ending(run, stop, tally, duration_ns))
        except Exception:
            logged = await logged_stop(self.store, run.tenant_id, run.id)
            if logged is not None:
                stop = logged  # another worker ended the run first (a cancel): its end stands
            else:
                logger.exception("could not complete the event log of run %s", run.id)
                stop = stop if stop in FAILED_STOP_REASONS else "error"
            return await self.finish_record(run, stop, tally, duration_ns)
        if ended is None:  # the log was completed before, by a close without the run's ending
            return await self.finish_record(run, stop, tally, duration_ns)
        await _release(self.store, ended)
        tracer().end_run(ended)
        return ended

    async def finish_unchanged(
        self, run: RunRecord, stop: str, error: RunFailure | None, tally: Tally, duration_ns: Callable[[], int]
    ) -> RunRecord | None:
        """`finish` by the run's holder from `run` as it last wrote it, reading nothing first: the
        last events, `[DONE]` and the ending are written together only while the stored run is still
        that version and the log still ends where this finisher's log continues. None, with nothing
        written, when either moved on (a cancel, a takeover, another writer): the caller then ends
        the run as anyone outside would, from what the store says."""

        def unchanged(stored: RunRecord) -> RunRecord:
            if stored.version != run.version:
                raise RunChanged(f"run {run.id} changed since its holder last wrote it")
            return end(stored)

        end = self._ending(run, stop, tally, duration_ns)
        for event in _last_events(run, stop, error, tally):
            self.log.emit(event)
        try:
            ended = await self.log.close(unchanged)
        except Conflict:  # RunChanged, LogMoved, or a log completed by another writer (its flusher has ended)
            return None
        if ended is None:  # the log was closed before (not by this holder): let the caller look
            return None
        await _release(self.store, ended)
        tracer().end_run(ended)
        return ended

    async def _close(
        self, run: RunRecord, last_events: list[dict[str, Any]], end: Callable[[RunRecord], RunRecord]
    ) -> RunRecord | None:
        """Close the log; when another writer appended first and this finisher may reopen, write
        the same last events again after theirs (the other writer's next append then finds the
        log complete and stops)."""
        for _ in range(MOVED_ATTEMPTS):
            try:
                return await self.log.close(end)
            except LogMoved:
                if self.reopen is None:
                    raise
                self.log = self.reopen(await self.store.last_seq(run.tenant_id, run.id))
                for event in last_events:
                    self.log.emit(event)
        return await self.log.close(end)

    async def finish_record(self, run: RunRecord, stop: str, tally: Tally, duration_ns: Callable[[], int]) -> RunRecord:
        """The run record's terminal state, and the group released, for a log that is complete
        already (or cannot be completed): the record follows what the log says."""
        try:
            run = await update_run(self.store, run, self._ending(run, stop, tally, duration_ns))
        finally:
            await _release(self.store, run)
        tracer().end_run(run)
        return run

    def _ending(
        self, run: RunRecord, stop: str, tally: Tally, duration_ns: Callable[[], int]
    ) -> Callable[[RunRecord], RunRecord]:
        usage = tally.usage_event(run.id)
        return ending(stop, self.retention_s, ttft_ns=tally.ttft_ns, total_duration_ns=duration_ns(), usage=usage)


class RunChanged(Conflict):
    """The stored run is not the version its holder last wrote (`RunFinisher.finish_unchanged`)."""


def _last_events(run: RunRecord, stop: str, error: RunFailure | None, tally: Tally) -> list[dict[str, Any]]:
    """A run's events before `[DONE]`: its stop reason, then its error or (unless cancelled) its usage."""
    last_events = [events.stop_reason(stop)]
    if error is not None:
        last_events.append(
            events.error_message(run_id=run.id, error_type=error.error_type, message=error.message, detail=error.detail)
        )
    elif stop != "cancelled":
        last_events.append(tally.usage_event(run.id))
    return last_events


async def end_with_error(store: Store, run: RunRecord, log: RunLog, detail: str, retention_s: float) -> None:
    """End a run that cannot run as every run ends: `stop_reason`, `error_message`, `[DONE]`."""
    log.emit(events.stop_reason("error"))
    log.emit(events.error_message(run_id=run.id, error_type="internal_error", message=detail, detail=None))
    ended = await log.close(ending("error", retention_s))
    await _release(store, run)
    tracer().end_run(ended or run)


async def set_terminal(store: Store, run: RunRecord, stop: str, retention_s: float) -> None:
    """End a run record whose log is already complete (its worker died before ending the record)."""
    ended = await update_run(store, await store.get_run(run.tenant_id, run.id), ending(stop, retention_s))
    await _release(store, run)
    tracer().end_run(ended)


async def _release(store: Store, run: RunRecord) -> None:
    if run.group_id is not None:
        await store.release_group(run.tenant_id, run.group_id, run.id)
