"""Opening a run for a worker: its conversation, its committed progress, what a dead worker left.

Every worker that drives a run, the first or one adopting it, starts here: it reads the
history the run continues, rebuilds the manager's progress from the committed steps (a run
resuming a paused one continues that run's rounds), and names in the log what an earlier
worker streamed after the last committed step, as an abandoned attempt.
"""

from __future__ import annotations

import orjson

from chorus.engine import events, identity
from chorus.runs.history import load_tail
from chorus.runs.options import RunOptions
from chorus.runs.progress import restore, slot_of
from chorus.runs.tail_cache import tail_cache
from chorus.runs.writer import StepWriter
from chorus.store.base import LOG_END


async def load_history(writer: StepWriter) -> None:
    """The conversation this run continues, as far back as a context reaches (see `load_tail`):
    its group's history, or its own messages (no group)."""
    loaded, store = writer.loaded, writer.store
    run, group = loaded.run, loaded.group
    key = {"group_id": group.id} if group is not None else {"run_id": run.id}
    window = max(a.context_window for a in loaded.agents.values())
    records = await load_tail(store, run.tenant_id, key, window, tail_cache(store))
    writer.history = [r["message"] for r in records]
    for record in records:
        if record["run_id"] == run.id and record["step_key"] != identity.INPUT_STEP:
            writer.slots[record["id"]] = slot_of(record["step_key"])


async def restore_progress(writer: StepWriter) -> None:
    """Rebuild the manager's progress from committed steps (and note whether the inputs are among them)."""
    run, store = writer.loaded.run, writer.store
    steps = await store.list_steps(run.tenant_id, run.id)
    progress = restore(steps)
    writer.inputs_committed = any(s.step_key == identity.INPUT_STEP for s in steps)
    paused = RunOptions.of(run).continues
    if paused is not None:
        # a run resuming a paused one continues its rounds: those before the pause are done
        earlier = await store.list_steps(run.tenant_id, paused.run_id)
        prior = restore(s for s in earlier if s.agent_id is not None and s.round < paused.round)
        progress.turns = prior.turns + progress.turns
        progress.rounds = max(progress.rounds, prior.rounds)
    writer.progress = progress


async def mark_abandoned(writer: StepWriter) -> None:
    """Name, in the log, the messages streamed after the last committed step: their attempt
    will never complete. A re-execution then writes its messages under a new incarnation, so
    their ids differ from the abandoned ones."""
    log, run, committed = writer.log, writer.loaded.run, writer.progress.log_seq
    if log.last_seq <= committed:
        return
    rows = await writer.store.read_events(run.tenant_id, run.id, committed, log.last_seq - committed)
    ids: list[str] = []
    named: set[str] = set()  # by a marker already there: a retried Plan marks before its inline turn would
    step_id = None
    for _, data in rows:
        if data == LOG_END:
            break  # the run was ended meanwhile (a cancel from the API): nothing after the end
        event = orjson.loads(data)
        if "abandoned" in event:
            named.update(event["abandoned"]["message_ids"])
        elif "id" in event and event["id"] not in ids:
            ids.append(event["id"])
            step_id = event.get("step_id", step_id)
    ids = [i for i in ids if i not in named]
    if not ids:
        return
    log.emit(
        events.abandoned_attempt(
            run_id=run.id, step_id=step_id, message_ids=ids, reason="the worker running it stopped"
        )
    )
    if not writer.holder.lease.renew:
        # a retried workflow task (in-process recovery bumped the incarnation when it took over)
        await writer.holder.update(lambda r: r.model_copy(update={"incarnation": r.incarnation + 1}))
