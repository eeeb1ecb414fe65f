"""Ending a run from the driver that ran it to its end: a Plan that ran the run's last rounds itself.

`finalize` ends a run from outside, so it reads everything first: the run, the log's end, every
committed step for the usage, and the log's tail for a stop reason a dead finisher logged. A
Plan that ran the run's last round inline (directly started, or in an execution) holds all of
that already: the run as it last wrote it (its own writes keep the holder's copy current), its
log writer's last seq_id (it was the log's one writer), and its progress, restored at its start
and accounted at each of its commits. So it ends the run from those, in the one write that
closes the log, and that write is conditional: the stored run must still be the version the
holder last wrote, and the log must still end where the holder's writer stopped. Anything else
(a cancel requested meanwhile, a takeover, a sweep that ended the run, another writer) fails it
with nothing written, and the run is then ended by `finalize` as before. The run record, the
log and the group's hand-over are those `finalize` writes.
"""

from __future__ import annotations

from collections.abc import Sequence

from chorus.clock import ns_since
from chorus.runs.driver import RunDriver
from chorus.runs.finisher import RunFinisher, Tally
from chorus.runs.log import run_log
from chorus.settings import Settings
from chorus.store.records import RunRecord
from chorus.vocabulary import RunFailure


async def end_held(
    driver: RunDriver, settings: Settings, stop: str, error: RunFailure | None, children: Sequence[str]
) -> RunRecord | None:
    """End `driver`'s run with `stop` (or `error`) from what the driver holds; the run as ended, or
    None (nothing written) when the holder's view may be out of date: the caller finalizes then."""
    run, log = driver.run, driver.log
    if driver.holder.lost or driver.loaded.cancel.is_set() or run.cancel_requested or run.is_terminal:
        return None  # a cancel's ending (and a run taken or ended elsewhere) is `finalize`'s to decide
    if log.closed or log.durable_frames != len(log.frames):
        return None  # the writer did not store everything it emitted: its last seq_id is not the log's
    progress = driver.progress
    tally = Tally(progress.usage, progress.step_count, tuple(children))
    finisher = RunFinisher(driver.store, run_log(driver.store, settings, run, log.last_seq), settings.event_retention_s)
    created = run.created_at
    return await finisher.finish_unchanged(run, stop, error, tally, lambda: ns_since(created))
