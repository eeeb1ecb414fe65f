"""The claim of a directly started run's first attempt (`Store.claim_first_attempt`), on every adapter.

Lambda may deliver a run's event twice at once: exactly one of the deliveries may drive the run
under the lease the API issued with it, so the claim is won once, by whoever put it first; a
retried call of the winner still finds its claim, and the claim goes with its run.
"""

from __future__ import annotations

import asyncio

from chorus.store.base import Store
from support.contract_records import run


async def test_the_first_attempt_is_claimed_once_and_the_winner_keeps_it(store: Store) -> None:
    r = run()
    await store.put_run(r)
    assert await store.claim_first_attempt("t1", r.id, "attempt-a")
    assert await store.claim_first_attempt("t1", r.id, "attempt-a"), "a retried claim of the winner finds it"
    assert not await store.claim_first_attempt("t1", r.id, "attempt-b"), "a duplicate delivery loses"
    assert await store.claim_first_attempt("t2", r.id, "attempt-b"), "another tenant's run of that id is another run"


async def test_racing_claims_have_one_winner(store: Store) -> None:
    r = run()
    await store.put_run(r)
    results = await asyncio.gather(*(store.claim_first_attempt("t1", r.id, f"attempt-{i}") for i in range(8)))
    assert results.count(True) == 1


async def test_the_claim_goes_with_its_run_and_never_touches_its_record(store: Store) -> None:
    r = run()
    await store.put_run(r)
    version = await store.run_version("t1", r.id)
    assert await store.claim_first_attempt("t1", r.id, "attempt-a")
    assert await store.run_version("t1", r.id) == version
    assert await store.list_steps("t1", r.id) == [] and await store.read_events("t1", r.id, 0, 10) == []
    await store.delete_run("t1", r.id)
    await store.put_run(r)  # the same id, a new run: its first attempt is unclaimed
    assert await store.claim_first_attempt("t1", r.id, "attempt-b")
