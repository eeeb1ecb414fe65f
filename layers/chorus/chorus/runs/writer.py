"""Writing a run's output: events into its log as they come, each step committed once.

`StepWriter` is the run's own `StepSink`: a turn runner (directly, or through a parallel
round's ordered lanes) emits events into it and commits steps through it. A commit makes
the step's events durable first (the log is flushed, and the step records how far the log
got), then writes the step record and its messages in one keyed write, so a retried step is
refused by the store rather than written twice. The writer keeps what this worker knows of
the run current as it writes: the conversation, which round wrote each message, the
committed progress, and when the first event went out.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from chorus.engine import events, identity
from chorus.engine.events import Event
from chorus.errors import AlreadyCommitted, RunEnded
from chorus.runs.approvals import track_pending_approval
from chorus.runs.holding import RunHolder
from chorus.runs.lease import LeaseLost, RunCancelled, uncancellable
from chorus.runs.loading import LoadedRun
from chorus.runs.log import RunLog
from chorus.runs.progress import CommittedProgress, step_records, usage_dict
from chorus.runs.steps import StepCommit
from chorus.store.base import Store
from chorus.store.records import MessageRecord, StepRecord

logger = logging.getLogger(__name__)


class StepWriter:
    def __init__(self, store: Store, log: RunLog, holder: RunHolder, started_ns: int) -> None:
        self.store = store
        self.log = log
        self.holder = holder
        self.started_ns = started_ns
        self.history: list[dict[str, Any]] = []
        """The conversation the run continues, and what it has committed to it."""
        self.slots: dict[str, tuple[int, int]] = {}
        """`(round, call)` of each history message this run wrote, to snapshot a round's context."""
        self.progress = CommittedProgress()
        self.inputs_committed = False
        """Seen among the restored steps: a commit again would only be refused (and billed)."""
        self.ttft_ns: int | None = None
        """Nanoseconds from the start of this worker's drive to the run's first event."""

    @property
    def loaded(self) -> LoadedRun:
        return self.holder.loaded

    def emit(self, event: Event) -> None:
        if self.ttft_ns is None:
            self.ttft_ns = time.perf_counter_ns() - self.started_ns
        self.log.emit(event)

    async def commit(self, step: StepCommit) -> None:
        """Make the step's events durable, then write its record and messages once."""
        run, group = self.loaded.run, self.loaded.group
        records, record = step_records(run, group, step.key, step.agent_id, step.messages)
        record = record.model_copy(
            update={
                "stop_reason": step.stop_reason,
                "text": step.text,
                "usage": usage_dict(step.usage),
                "round": step.slot.round,
                "call": step.slot.call,
                "calls": step.slot.calls,
                "step": step.step,
                "final": step.final,
                "purpose": step.purpose,
                "pending": step.pending,
                "reply_to": step.reply_to,
                "error": step.error,
            }
        )
        if await self.write(records, record):
            self.progress.account(step.usage)
            for message in records:
                self.slots[message.id] = (step.slot.round, step.slot.call)
            if group is not None:
                await track_pending_approval(self.store, group, run, step)

    async def commit_inputs(self) -> None:
        """Commit the request's input messages as the run's step 0 (once: a retry finds them committed)."""
        run = self.loaded.run
        key = identity.INPUT_STEP
        messages = events.input_messages(run.id, key, self.loaded.inputs)
        records, step = step_records(run, self.loaded.group, key, None, messages)
        await self.write(records, step.model_copy(update={"step": 0}))

    async def write(self, records: list[MessageRecord], step: StepRecord) -> bool:
        """Flush the log, then commit; False if the step was committed before (a retry),
        `RunCancelled` if the run ended meanwhile (the store refused the commit). A cancel
        arriving meanwhile waits for the write: a log batch or a commit cut in half by a
        cancelled await would leave the log's writer and the store disagreeing."""
        return await uncancellable(self._write_now(records, step))

    async def _write_now(self, records: list[MessageRecord], step: StepRecord) -> bool:
        if self.holder.lost:
            raise LeaseLost
        await self.log.flush()
        step = step.model_copy(update={"log_seq": self.log.last_seq})
        try:
            await self.store.commit_step(step, records)
        except AlreadyCommitted:
            logger.info("step %s of run %s was committed before; not writing it again", step.step_key, step.run_id)
            return False
        except RunEnded:
            # the store's fence: the run ended (cancelled, rolled back) while this worker ran; it
            # stops as at a cancel, and whoever ended the run already wrote its end
            logger.info("run %s ended before step %s was committed; stopping", step.run_id, step.step_key)
            raise RunCancelled from None
        self.history.extend(r.message for r in records)
        self.progress.log_seq = max(self.progress.log_seq, step.log_seq)
        return True
