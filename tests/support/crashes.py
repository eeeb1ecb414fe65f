"""The crash machinery of the fault suites: a worker that dies at a chosen store write, store call or
model token, its successor's recovery, and the invariants every recovered run must meet.

`Crash` is a `BaseException` no `except Exception` catches, like a killed process; the dead
worker's store and model raise it from the crash point on (`Switch`). `crash_and_recover` runs an
uninterrupted reference run, then the crashing one, then a second worker on the same store file,
and checks the recovered run against the reference (`check_completed`). The store class is looked
up on this module at call time, so a suite can swap `SQLiteStore` for another adapter
(`tests/aws/test_crash_recovery_on_dynamodb.py`).
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from chorus.llm.base import Model, ModelEvent, ModelRequest
from chorus.llm.function_model import FunctionModel
from chorus.llm.resolve import resolve_model
from chorus.runs.service import RunService
from chorus.runs.tailer import tail_store
from chorus.schemas.requests import MessageRequest
from chorus.settings import Settings
from chorus.store.records import AgentRecord, GroupRecord, Page, RunRecord
from chorus.store.sqlite import SQLiteStore as SQLiteStore  # exported: a suite may swap it (see above)

TENANT = "default"
NOW = "2026-11-24T06:33:05.000000+00:00"
WRITES = {
    "put_run",
    "update_run",
    "commit_step",
    "append_events",
    "end_log",
    "claim_group",
    "release_group",
    "remember_idempotency_key",
    "forget_idempotency_key",
    "delete_run",
}


class Crash(BaseException):
    """The worker process died here."""


class Switch:
    def __init__(
        self, at_write: int | None = None, at_token: int | None = None, at_call: tuple[str, int] | None = None
    ) -> None:
        self.at_write, self.at_token, self.at_call = at_write, at_token, at_call
        self.writes = self.tokens = 0
        self.calls: dict[str, int] = {}
        self.dead = False
        self.died = asyncio.Event()
        """Set when the worker dies: its connections drop (`tests/support/asgi_client.py`)."""

    def die(self) -> None:
        self.dead = True
        self.died.set()
        raise Crash

    def call(self, name: str) -> None:
        """Crash at the n-th call of a named store method (deterministic crash points)."""
        self.check()
        self.calls[name] = self.calls.get(name, 0) + 1
        if self.at_call == (name, self.calls[name]):
            self.die()

    def check(self) -> None:
        if self.dead:
            raise Crash

    def write(self) -> None:
        self.check()
        self.writes += 1
        if self.writes == self.at_write:
            self.die()

    def token(self) -> None:
        self.check()
        self.tokens += 1
        if self.tokens == self.at_token:
            self.die()


class CrashingStore:
    """The real SQLite adapter behind a switch: after the crash point, every call raises `Crash`."""

    def __init__(self, inner: SQLiteStore, switch: Switch) -> None:
        self.inner, self.switch = inner, switch

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target) or name in {"open", "close"}:
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.switch.call(name)
            if name in WRITES:
                self.switch.write()
            else:
                self.switch.check()
            return await target(*args, **kwargs)

        return call


def crashing_model(inner: Model, switch: Switch) -> Model:
    """The real model behind the switch: each token it streams may be the crash point."""

    async def tokens(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        async for event in inner.stream(request):
            switch.token()
            yield event

    return FunctionModel(tokens, handle=inner.handle)


@dataclass
class Config:
    agents: int
    tokens: list[int]
    max_turns: int
    stream_tokens: bool
    crash_on_token: bool
    crash_fraction: float
    flush_events: int = 5
    crash_at_call: tuple[str, int] | None = None
    manager_type: str = "round_robin"


def config_for(seed: int) -> Config:
    rng = random.Random(seed)
    agents = rng.randint(1, 3)
    return Config(
        agents=agents,
        tokens=[rng.randint(1, 6) for _ in range(agents)],
        max_turns=rng.randint(1, 5),
        stream_tokens=rng.random() < 0.6,
        crash_on_token=rng.random() < 0.4,
        crash_fraction=rng.random(),
        manager_type=rng.choice(["round_robin", "round_robin", "supervisor", "dynamic", "sleeptime"]),
    )


MANAGER = "agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e50"


async def seed_group(store: SQLiteStore, cfg: Config) -> str:
    ids = [f"agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5{i + 1}" for i in range(cfg.agents)]
    for i, agent_id in [*enumerate(ids), (0, MANAGER)]:
        await store.put_agent(
            AgentRecord(
                tenant_id=TENANT,
                id=agent_id,
                created_at=NOW,
                updated_at=NOW,
                name="Manager" if agent_id == MANAGER else f"Agent{i}",
                system="s",
                model="scripted/default",
                metadata={"scripted": {"tokens": cfg.tokens[i]}},
            )
        )
    config: dict[str, Any] = {"manager_type": cfg.manager_type, "max_turns": cfg.max_turns}
    if cfg.manager_type in ("supervisor", "sleeptime"):
        config = {"manager_type": cfg.manager_type, "manager_agent_id": MANAGER}
    elif cfg.manager_type == "dynamic":
        config["manager_agent_id"] = MANAGER
    group_id = "group-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
    await store.put_group(
        GroupRecord(
            tenant_id=TENANT,
            id=group_id,
            created_at=NOW,
            updated_at=NOW,
            agent_ids=ids,
            manager_config=config,
        )
    )
    return group_id


def request(cfg: Config) -> MessageRequest:
    return MessageRequest(input="go", background=True, stream_tokens=cfg.stream_tokens)


def settings(db: Path, cfg: Config) -> Settings:
    return Settings(db_path=db, log_flush_interval_s=60, log_flush_events=cfg.flush_events)


async def read_log(store: SQLiteStore, run_id: str) -> list[tuple[int, str]]:
    return await store.read_events(TENANT, run_id, 0, 1_000_000)


def spoken(log: list[tuple[int, str]]) -> list[tuple[str, str]]:
    """(speaker, text) of each message the stream delivered, abandoned attempts dropped."""
    abandoned: set[str] = set()
    texts: dict[str, list[str]] = {}
    names: dict[str, str] = {}
    for _, data in log:
        if data == "[DONE]":
            continue
        event = json.loads(data)
        if event["message_type"] == "ping" and "abandoned" in event:
            abandoned.update(event["abandoned"]["message_ids"])
        elif event["message_type"] == "assistant_message":
            texts.setdefault(event["id"], []).append(event["content"])
            names[event["id"]] = event["name"]
    return [(names[i], "".join(parts)) for i, parts in texts.items() if i not in abandoned]


def signature(message: dict[str, Any]) -> tuple[str, str | None, str]:
    """What a history message says, whatever its ids (a re-driven step names its messages afresh)."""
    body = message.get("content") or message.get("tool_return") or (message.get("tool_call") or {}).get("arguments")
    return message["message_type"], message.get("name"), str(body)


async def history_of(store: SQLiteStore, run_id: str) -> list[tuple[str, str | None, str]]:
    history = await store.list_messages(TENANT, Page(limit=1000, order="asc"), run_id=run_id)
    assert len({m.id for m in history}) == len(history), "a message was written twice"
    return [signature(m.message) for m in history]


async def reference(tmp: Path, cfg: Config) -> tuple[list[tuple[str, str]], list[Any], int, int]:
    """An uninterrupted run: what it said and kept, and how many writes and tokens it took."""
    store = SQLiteStore(tmp / "reference.db")
    await store.open()
    group_id = await seed_group(store, cfg)
    switch = Switch()
    service = RunService(
        CrashingStore(store, switch),
        settings(tmp / "reference.db", cfg),
        lease_ttl_s=0.05,
        heartbeat_s=60,
        resolver=lambda a: crashing_model(resolve_model(a.model, a.metadata), switch),
    )
    started = await service.start_group_run(TENANT, group_id, request(cfg), streaming=True)
    run = await service.wait_terminal(TENANT, started.run.id)
    assert run.status == "completed"
    said = spoken(await read_log(store, run.id))
    kept = await history_of(store, run.id)
    await service.shutdown()
    await store.close()
    return said, kept, switch.writes, switch.tokens


async def crash_and_recover(tmp: Path, seed: int, cfg: Config | None = None) -> list[tuple[int, str]]:
    cfg = cfg or config_for(seed)
    expected, expected_history, writes, tokens = await reference(tmp, cfg)
    db = tmp / "crash.db"
    store_a = SQLiteStore(db)
    await store_a.open()
    group_id = await seed_group(store_a, cfg)
    if cfg.crash_at_call is not None:
        switch = Switch(at_call=cfg.crash_at_call)
    elif cfg.crash_on_token:
        switch = Switch(at_token=1 + int(cfg.crash_fraction * tokens))
    else:
        switch = Switch(at_write=1 + int(cfg.crash_fraction * writes))
    worker_a = RunService(
        CrashingStore(store_a, switch),
        settings(db, cfg),
        lease_ttl_s=0.05,
        heartbeat_s=60,
        resolver=lambda a: crashing_model(resolve_model(a.model, a.metadata), switch),
    )
    run_id: str | None = None
    try:
        started = await worker_a.start_group_run(TENANT, group_id, request(cfg), streaming=True)
        run_id = started.run.id
        await worker_a.executor.wait(run_id)
    except Crash:
        pass
    await bury(worker_a, store_a)
    await asyncio.sleep(0.06)  # the dead worker's lease expires

    store_b = SQLiteStore(db)
    await store_b.open()
    worker_b = RunService(store_b, settings(db, cfg), lease_ttl_s=5, heartbeat_s=1, orphan_grace_s=0.05)
    run = await the_group_run(store_b)
    if run is None:
        assert switch.writes == 1 and switch.dead, "only a crash at the very first write leaves no run"
        await store_b.close()
        return []
    await worker_b.recover()
    readers = [asyncio.create_task(read_all(store_b, run.id)) for _ in range(2)]
    final = await asyncio.wait_for(worker_b.wait_terminal(TENANT, run.id), 10)
    raced = await asyncio.wait_for(asyncio.gather(*readers), 10)
    log = await read_log(store_b, run.id)
    assert final.status == "completed", (seed, final.status, final.stop_reason)
    assert raced[0] == raced[1] == b"".join(frames(log)), f"seed {seed}: racing readers disagree"
    await check_completed(worker_b, store_b, run, cfg, seed, log, expected, expected_history)
    await worker_b.shutdown()
    await store_b.close()
    return log


async def bury(worker: RunService, store: SQLiteStore) -> None:
    """What a dead worker leaves: nothing more is written (its store raises), its tasks are gone.

    Its logs' flushers are found by task name: a crashed run has already left `worker._active`,
    and this worker is the only one alive in the loop now."""
    flushers = [t for t in asyncio.all_tasks() if t.get_name().startswith("flush-")]
    for flusher in flushers:
        flusher.cancel()
    await asyncio.gather(*flushers, return_exceptions=True)
    for task in list(worker.executor._tasks.values()):
        task.cancel()
    await asyncio.gather(*(a.log.abort() for a in worker._active.values()), return_exceptions=True)
    await store.close()


async def the_group_run(store: SQLiteStore) -> RunRecord | None:
    """The case's one group run (not the sleeptime agents' runs); None if the crash came before it existed."""
    listed: list[RunRecord] = await store.list_runs(TENANT, Page(limit=10))
    runs = [r for r in listed if r.group_id is not None]
    assert len(runs) <= 1, runs
    return runs[0] if runs else None


async def check_completed(
    worker: RunService,
    store: SQLiteStore,
    run: RunRecord,
    cfg: Config,
    seed: int,
    log: list[tuple[int, str]],
    expected: list[tuple[str, str]],
    expected_history: list[Any],
) -> None:
    """A completed run's log, history and stream against the uninterrupted reference."""
    assert [seq for seq, _ in log] == list(range(1, len(log) + 1)), f"seed {seed}: gap in the log"
    assert log[-1][1] == "[DONE]"
    for seq, data in log[:-1]:
        assert json.loads(data)["seq_id"] == seq
    assert await history_of(store, run.id) == expected_history, f"seed {seed}: history"
    if cfg.manager_type == "round_robin":
        assert len(expected_history) == 1 + cfg.max_turns
    assert spoken(log) == expected, f"seed {seed}: the stream says something else"
    if cfg.manager_type == "sleeptime":
        await _background_runs_once(worker, store, run, cfg, seed)


async def _background_runs_once(worker: RunService, store: SQLiteStore, run: RunRecord, cfg: Config, seed: int) -> None:
    """The sleeptime agents each got one background run, whoever started it, and each ended."""
    children = [r for r in await store.list_runs(TENANT, Page(limit=100)) if r.metadata.get("parent_run_id") == run.id]
    agents = sorted(f"agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5{i + 1}" for i in range(cfg.agents))
    assert sorted(c.agent_id for c in children) == agents, f"seed {seed}: children"
    await worker.recover()  # a child the dead worker had started is adopted like any orphan
    for child in children:
        done = await asyncio.wait_for(worker.wait_terminal(TENANT, child.id), 10)
        assert done.status == "completed", (seed, child.id, done.status)
    usage = json.loads((await read_log(store, run.id))[-2][1])
    assert usage["run_ids"][0] == run.id and sorted(usage["run_ids"][1:]) == sorted(c.id for c in children), (
        seed,
        usage,
        [(c.id, c.agent_id, c.created_at) for c in children],
    )


async def read_all(store: SQLiteStore, run_id: str) -> bytes:
    parts = [
        p async for p in tail_store(store, TENANT, run_id, 0, batch_size=4, poll_interval=0.005, ping_interval=None)
    ]
    return b"".join(parts)


def frames(log: list[tuple[int, str]]) -> list[bytes]:
    from chorus.runs.frames import frame

    return [frame(seq, data.encode()) for seq, data in log]
