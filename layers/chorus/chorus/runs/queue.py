"""A group's line of waiting runs: joining it, leaving it, and handing the group to its head.

The line (`GroupQueue`) sits beside the group's claim, which stays the one authority on who
runs: the head of the line is made the holder with the same `claim_group` compare-and-set a
plain send uses, so it gets the group only once no live run holds it, and two processes
handing the group on at once hand it to the same run. Every change of the line is a
compare-and-set on its version, re-read on conflict: no join or leave is ever lost.

Order of a hand-over, and why: the head is claimed first, then taken off the line. A crash
in between leaves a run that holds the group and is still marked queued; whoever looks next
(its sender, the next hand-over, the recovery sweep) finds it holding the group and starts
it. The other order could lose the run.
"""

from __future__ import annotations

from collections.abc import Callable

from chorus.errors import ChorusError, Conflict, NotFound
from chorus.limits import MAX_WAITING_RUNS
from chorus.store.base import Store
from chorus.store.records import GroupQueue, RunRecord

ATTEMPTS = 50
"""Compare-and-set retries of one change before giving up (as `finisher.update_run`)."""


class LineFull(Conflict):
    """The group's line holds `MAX_WAITING_RUNS` runs already."""


async def change_line(
    store: Store, tenant_id: str, group_id: str, change: Callable[[GroupQueue], GroupQueue]
) -> tuple[GroupQueue, GroupQueue]:
    """Apply `change` to the stored line with compare-and-set; returns the line before and after.
    A change that returns the line unchanged writes nothing."""
    for _ in range(ATTEMPTS):
        line = await store.get_group_queue(tenant_id, group_id)
        changed = change(line)
        if changed == line:
            return line, line
        try:
            return line, await store.put_group_queue(changed, expect_version=line.version)
        except Conflict:
            continue
    raise ChorusError(f"The line of group {group_id} changes too often to write; retry.")


async def join(store: Store, run: RunRecord, *, front: bool) -> str | None:
    """Put `run` in its group's line: at its end, or `front` as the run that takes the group next.
    Returns the run it displaced from the front (an earlier interrupting send that never started)."""
    assert run.group_id is not None

    def joined(line: GroupQueue) -> GroupQueue:
        if run.id in line:
            return line
        if front:
            return line.model_copy(update={"next": run.id})
        if len(line.waiting) >= MAX_WAITING_RUNS:
            raise LineFull(
                f"Group {run.group_id} already has {MAX_WAITING_RUNS} runs waiting, the most it may have; "
                "wait for some to finish and send again.",
                run_id=line.head,
            )
        return line.model_copy(update={"waiting": [*line.waiting, run.id]})

    before, _ = await change_line(store, run.tenant_id, run.group_id, joined)
    if front and before.next is not None and before.next != run.id:
        return before.next
    return None


async def leave(store: Store, tenant_id: str, group_id: str, run_id: str) -> None:
    """Take `run_id` out of the group's line (no-op if it is not in it)."""
    await change_line(store, tenant_id, group_id, lambda line: line.without(run_id) if run_id in line else line)


async def promote(store: Store, tenant_id: str, group_id: str) -> RunRecord | None:
    """Give the group to the head of its line unless a live run holds it. Returns the run that
    now holds the group and has still to be started; None when the line is empty or the group
    is busy (the holder's end hands it on). Heads that ended or are gone are dropped on the way."""
    for _ in range(ATTEMPTS):
        head = (await store.get_group_queue(tenant_id, group_id)).head
        if head is None:
            return None
        try:
            run: RunRecord | None = await store.get_run(tenant_id, head)
        except NotFound:
            run = None
        if run is None or run.is_terminal or run.cancel_requested:
            if run is not None and run.cancel_requested and not run.is_terminal:
                return None  # its canceller ends it and hands the group on
            await leave(store, tenant_id, group_id, head)
            continue
        if await store.claim_group(tenant_id, group_id, head) is not None:
            return None
        await leave(store, tenant_id, group_id, head)
        return run
    raise ChorusError(f"The line of group {group_id} changes too often to serve; retry.")
