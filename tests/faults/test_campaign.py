"""The fault campaign: seeded runs that mix managers, modes, clients and faults; every event accounted for.

Each case takes the group, manager and crash point of `support.crashes`
(round robin, supervisor, dynamic, sleeptime; a worker killed at a random
store write or model token) and adds, from its own seeded draw:

- the mode: a foreground stream, a background stream, or `/messages/async`;
- the client, talking HTTP to the app in-process (`tests/support/asgi_client.py`,
  which can hang up mid-stream): it reads to `[DONE]`; or hangs up after a
  random number of events and, for a background run, resumes with
  `POST /v1/runs/{id}/stream` after the last `seq_id` it saw (body
  `starting_after` or a `Last-Event-ID` header); or cancels the run with
  `POST /v1/groups/{id}/messages/cancel` after a random number of events;
- the fault: most cases kill worker A somewhere (its connections drop with
  it) and worker B adopts the run; some are flaky instead, every model call
  failing once with a rate limit before its first event and being retried.

When A is dead, the client goes on against B: a background run is resumed
from what the client last saw; a foreground one cannot be (400) and the
client keeps what it got. Checked for every case: every run of the case
reaches a terminal status; the stored log is gapless and ends in `[DONE]`;
what the client received, over all its connections, is exactly the log
(or, for a client that could not resume, a gapless prefix of it), with
nothing lost, duplicated, reordered or changed (`tests/support/streamcheck.py`;
a foreground client whose worker died may have been sent frames never
stored, which must belong to an attempt that never committed:
`check_unresumable`);
a completed run's history and stream equal an uninterrupted reference run's
(and two readers racing the recovering writer read the same bytes); a
cancelled run's history is part of the reference's, nothing twice.

`CHORUS_FAULT_CASES` cases (default 250; `make soak` runs 1,200) from seed 0.
With `CHORUS_CAMPAIGN_REPORT=<path>` the counts are written there as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from fastapi import FastAPI

from chorus.api import create_app
from chorus.api.deps import Services
from chorus.errors import ModelRateLimited
from chorus.llm.base import Model, ModelEvent, ModelRequest
from chorus.llm.function_model import FunctionModel
from chorus.llm.resolve import resolve_model
from chorus.llm.retry import RetryPolicy, retrying
from chorus.runs.service import RunService
from chorus.store.records import AgentRecord, Page, RunRecord
from support import crashes
from support.asgi_client import ConnectionLost, open_request, request
from support.streamcheck import Received, StreamCheck, check, check_unresumable, parse_frames

CASES = int(os.environ.get("CHORUS_FAULT_CASES", "250"))
TENANT = crashes.TENANT
Mode = Literal["foreground", "background", "async"]
Client = Literal["follow", "disconnect", "cancel"]


@dataclass(frozen=True, slots=True)
class Plan:
    """The client's and the fault's part of a case."""

    mode: Mode
    client: Client
    at_event: int
    """After how many received events the client hangs up or cancels."""
    crash: bool
    flaky: bool
    resume_by_header: bool


def plan_for(seed: int) -> Plan:
    rng = random.Random(f"campaign-{seed}")  # its own stream: the crash configs stay those of support.crashes
    mode: Mode = rng.choice(["foreground", "background", "background", "async"])
    client: Client = rng.choice(["follow", "disconnect", "disconnect", "cancel"])
    crash = rng.random() < 0.8
    return Plan(
        mode=mode,
        client=client,
        at_event=rng.randint(1, 12),
        crash=crash,
        flaky=not crash or rng.random() < 0.2,
        resume_by_header=rng.random() < 0.5,
    )


@dataclass
class Tally:
    """The campaign's counts, over all cases run in this session."""

    stream: StreamCheck = field(default_factory=StreamCheck)
    cases: int = 0
    runs: int = 0
    not_terminal: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    kinds: Counter[str] = field(default_factory=Counter)
    crashes: int = 0
    retries: int = 0
    resumes: int = 0
    cancels: int = 0
    no_run: int = 0
    """Cases whose worker died before the run existed (a crash at the very first write)."""

    def report(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "runs": self.runs,
            "runs_not_terminal": self.not_terminal,
            **{k: v for k, v in self.stream.as_dict().items() if k != "runs"},
            "streams_checked": self.stream.runs,
            "statuses": dict(self.statuses),
            "mix": dict(sorted(self.kinds.items())),
            "worker_crashes": self.crashes,
            "model_retries": self.retries,
            "resumes": self.resumes,
            "cancel_requests": self.cancels,
            "crashed_before_the_run_existed": self.no_run,
        }


TALLY = Tally()


def flaky_model(inner: Model) -> Model:
    """Each model call fails once with a rate limit before its first event, then the retry loop opens it again."""

    def call(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        attempts = 0

        async def refused() -> AsyncGenerator[ModelEvent, None]:
            raise ModelRateLimited("scripted rate limit", retry_after_s=0.0)
            yield  # an async generator

        def open_stream() -> AsyncGenerator[ModelEvent, None]:
            nonlocal attempts
            attempts += 1
            if attempts == 1:
                TALLY.retries += 1
                return refused()
            return inner.stream(request)  # type: ignore[return-value]

        return retrying(open_stream, RetryPolicy(attempts=3, sleep=_no_pause))

    return FunctionModel(call, handle=inner.handle)


async def _no_pause(_: float) -> None:
    return None


_APPS: dict[str, FastAPI] = {}


def app_for(worker: RunService, name: str) -> FastAPI:
    """The real app over this worker (its store, its lease settings), without a lifespan of its own.

    One app per role (A, B) for the whole campaign, its services swapped per case: FastAPI builds a
    route's validators at its first request (~0.2 s for the send route), which would double a case."""
    app = _APPS.get(name)
    if app is None:
        app = _APPS[name] = create_app(worker.settings, store=worker.store)
    app.state.services = Services(worker.settings, worker.store, worker, {})
    return app


class ClientView:
    """Everything one client received of one run, over all its connections."""

    def __init__(self) -> None:
        self.run_id: str | None = None
        self.events: list[tuple[int, str]] = []
        self.done = False
        self.lost_connection = False

    @property
    def last_seq(self) -> int:
        return self.events[-1][0] if self.events else 0

    def received(self) -> Received:
        return Received(list(self.events), self.done)

    async def read(
        self,
        app: FastAPI,
        path: str,
        body: Any,
        *,
        headers: dict[str, str] | None = None,
        stop_after: int | None = None,
        died: asyncio.Event | None = None,
        on_event: Any = None,
    ) -> int:
        """Stream one response; hang up after `stop_after` events in all. Returns the status (0: no answer)."""
        connection = open_request(app, "POST", path, body, headers)
        try:
            status = await connection.started()
            if status != 200:
                await connection.body(died)
                return status
            buffer = b""
            while (chunk := await connection.next_chunk(died)) is not None:
                buffer += chunk
                complete, _, buffer = buffer.rpartition(b"\n\n")
                if complete:
                    got = parse_frames(complete + b"\n\n")
                    self.events.extend(got.events)
                    self.done = self.done or got.done
                    if self.run_id is None and got.events:
                        self.run_id = json.loads(got.events[0][1]).get("run_id")
                    if on_event is not None:
                        await on_event(self)
                    if stop_after is not None and len(self.events) >= stop_after and not self.done:
                        await connection.hang_up()
                        return status
            await connection.closed()
            return status
        except ConnectionLost:
            self.lost_connection = True
            connection.kill()
            await connection.closed()
            return 0


async def drive(app: FastAPI, group_id: str, cfg: crashes.Config, plan: Plan, view: ClientView, died: asyncio.Event,
                state: dict[str, Any]) -> None:  # fmt: skip
    """Phase one, against worker A, until the client is done or A dies."""
    body = {"input": "go", "stream_tokens": cfg.stream_tokens, "include_pings": False}
    cancel_sent = False

    async def maybe_cancel(v: ClientView) -> None:
        nonlocal cancel_sent
        if plan.client == "cancel" and not cancel_sent and len(v.events) >= plan.at_event:
            cancel_sent = True
            await cancel(app, group_id, v, died, state)

    stop_after = plan.at_event if plan.client == "disconnect" else None
    if plan.mode == "async":
        try:
            status, run = await request(app, "POST", f"/v1/groups/{group_id}/messages/async", body | {
                "stream_tokens": False}, died=died)  # fmt: skip
        except ConnectionLost:
            return
        assert status == 200, run
        view.run_id = run["id"]
        await view.read(app, f"/v1/runs/{view.run_id}/stream", {"starting_after": 0, "poll_interval": 0.005},
                        stop_after=stop_after, died=died, on_event=maybe_cancel)  # fmt: skip
    else:
        body["background"] = plan.mode == "background"
        status = await view.read(app, f"/v1/groups/{group_id}/messages/stream", body, stop_after=stop_after,
                                 died=died, on_event=maybe_cancel)  # fmt: skip
        assert status in (0, 200), status
    if plan.client == "disconnect" and not view.done and not died.is_set() and plan.mode != "foreground":
        await resume(app, view, plan, died)


async def resume(app: FastAPI, view: ClientView, plan: Plan, died: asyncio.Event | None) -> None:
    assert view.run_id is not None
    TALLY.resumes += 1
    after = view.last_seq
    if plan.resume_by_header:
        body, headers = {"poll_interval": 0.005}, {"Last-Event-ID": str(after)}
    else:
        body, headers = {"starting_after": after, "poll_interval": 0.005}, None
    status = await view.read(app, f"/v1/runs/{view.run_id}/stream", body, headers=headers, died=died)
    assert status in (0, 200), status


async def cancel(
    app: FastAPI, group_id: str, view: ClientView, died: asyncio.Event | None, state: dict[str, Any]
) -> None:
    TALLY.cancels += 1
    body = {"run_ids": [view.run_id]} if view.run_id else None
    try:
        status, answer = await request(app, "POST", f"/v1/groups/{group_id}/messages/cancel", body, died=died)
    except ConnectionLost:
        return
    assert status in (200, 409), (status, answer)  # 409: the run had already ended
    state["cancelled"] = status == 200


async def campaign_case(tmp: Path, seed: int) -> None:
    cfg, plan = crashes.config_for(seed), plan_for(seed)
    TALLY.cases += 1
    fault = "crash+flaky" if plan.crash and plan.flaky else ("crash" if plan.crash else "flaky")
    TALLY.kinds.update([f"manager:{cfg.manager_type}", f"mode:{plan.mode}", f"client:{plan.client}", f"fault:{fault}"])
    expected, expected_history, writes, tokens = await crashes.reference(tmp, cfg)
    db = tmp / "crash.db"
    store_a = crashes.SQLiteStore(db)
    await store_a.open()
    group_id = await crashes.seed_group(store_a, cfg)
    if not plan.crash:
        switch = crashes.Switch()
    elif cfg.crash_on_token:
        switch = crashes.Switch(at_token=1 + int(cfg.crash_fraction * tokens))
    else:
        switch = crashes.Switch(at_write=1 + int(cfg.crash_fraction * writes))

    def resolver(agent: AgentRecord) -> Model:
        model: Model = crashes.crashing_model(resolve_model(agent.model, agent.metadata), switch)
        return flaky_model(model) if plan.flaky else model

    worker_a = RunService(
        crashes.CrashingStore(store_a, switch), crashes.settings(db, cfg),
        lease_ttl_s=0.05, heartbeat_s=60, resolver=resolver,
    )  # fmt: skip
    view, state = ClientView(), {"cancelled": False}
    await asyncio.wait_for(drive(app_for(worker_a, "A"), group_id, cfg, plan, view, switch.died, state), 20)
    if not switch.dead:  # A is alive: its runs (and sleeptime children) finish their last writes
        drained = asyncio.create_task(worker_a.executor.drain())
        await asyncio.wait([drained, asyncio.create_task(switch.died.wait())], timeout=20,
                           return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
    TALLY.crashes += switch.dead
    await crashes.bury(worker_a, store_a)
    await asyncio.sleep(0.06)  # the dead worker's lease expires

    store_b = crashes.SQLiteStore(db)
    await store_b.open()
    worker_b = RunService(store_b, crashes.settings(db, cfg), lease_ttl_s=5, heartbeat_s=1, orphan_grace_s=0.05)
    try:
        await finish_case(seed, cfg, plan, store_b, worker_b, view, state, switch, expected, expected_history)
    finally:
        await worker_b.shutdown()
        await store_b.close()


async def finish_case(
    seed: int,
    cfg: crashes.Config,
    plan: Plan,
    store: Any,
    worker: RunService,
    view: ClientView,
    state: dict[str, Any],
    switch: crashes.Switch,
    expected: Any,
    expected_history: Any,
) -> None:
    run = await crashes.the_group_run(store)
    if run is None:
        assert switch.writes == 1 and switch.dead, "only a crash at the very first write leaves no run"
        assert not view.events
        TALLY.no_run += 1
        return
    assert view.run_id in (None, run.id)
    await worker.recover()
    readers = [asyncio.create_task(crashes.read_all(store, run.id)) for _ in range(2)]
    app = app_for(worker, "B")
    if plan.client == "cancel" and switch.dead and not state["cancelled"] and not view.done:
        view.run_id = run.id
        await cancel(app, run.group_id or "", view, None, state)  # the client asks again, of the live worker
    can_resume = run.background
    if not view.done and can_resume:
        view.run_id = run.id
        await asyncio.wait_for(resume(app, view, plan, None), 20)
    elif not view.done:
        status, _ = await request(app, "POST", f"/v1/runs/{run.id}/stream", {"starting_after": view.last_seq})
        assert status == 400, f"seed {seed}: a foreground run must not be resumable"

    final = await terminal(worker, run.id)
    await worker.recover()  # children a dead worker had started are adopted like any orphan
    every_run = await store.list_runs(TENANT, Page(limit=100))
    TALLY.runs += len(every_run)
    for other in every_run:
        done = await terminal(worker, other.id)
        TALLY.statuses[done.status] += 1
        if not done.is_terminal:
            TALLY.not_terminal += 1
    log = await crashes.read_log(store, run.id)
    if can_resume or not switch.dead:
        result = check(view.received(), log, complete=view.done or can_resume)
    else:
        kept = await store.list_messages(TENANT, Page(limit=1000), run_id=run.id)
        result = check_unresumable(view.received(), log, {m.id for m in kept})
    TALLY.stream.add(result)
    assert result.ok, f"seed {seed}: {result}"
    assert TALLY.not_terminal == 0, f"seed {seed}: a run did not end"

    cancelled = state["cancelled"] or (plan.client == "disconnect" and plan.mode == "foreground")
    if final.status == "completed":
        raced = await asyncio.wait_for(asyncio.gather(*readers), 10)
        assert raced[0] == raced[1] == b"".join(crashes.frames(log)), f"seed {seed}: racing readers disagree"
        await crashes.check_completed(worker, store, run, cfg, seed, log, expected, expected_history)
    else:
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        assert cancelled and final.status == "cancelled", (seed, final.status, final.stop_reason)
        stops = [
            e["stop_reason"] for e in map(json.loads, (d for _, d in log[:-1])) if e["message_type"] == "stop_reason"
        ]
        assert log[-1][1] == "[DONE]" and stops[-1:] == ["cancelled"], (seed, stops)
        kept = await crashes.history_of(store, run.id)
        assert _is_subsequence(kept, expected_history), f"seed {seed}: a cancelled run kept something else"


async def terminal(worker: RunService, run_id: str) -> RunRecord:
    try:
        return await asyncio.wait_for(worker.wait_terminal(TENANT, run_id), 10)
    except TimeoutError:
        return await worker.store.get_run(TENANT, run_id)


def _is_subsequence(part: list[Any], whole: list[Any]) -> bool:
    items = iter(whole)
    return all(any(x == y for y in items) for x in part)


@pytest.fixture(scope="module", autouse=True)
def campaign_report() -> Iterator[None]:
    yield
    path = os.environ.get("CHORUS_CAMPAIGN_REPORT")
    if path:
        Path(path).write_text(json.dumps(TALLY.report(), indent=2) + "\n")


@pytest.mark.parametrize("seed", range(CASES))
async def test_campaign_case(tmp_path: Path, seed: int) -> None:
    await campaign_case(tmp_path, seed)


def test_the_campaign_lost_and_duplicated_nothing() -> None:
    """The session's totals (the per-case asserts already failed on any one case)."""
    report = TALLY.report()
    print("\nfault campaign:", json.dumps(report))
    assert report["lost"] == report["duplicated"] == report["runs_not_terminal"] == 0
    assert report["reordered"] == report["changed"] == report["log_gaps"] == 0
