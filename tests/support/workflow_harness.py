"""The run workflow executed for real, offline: moto runs `statemachine/run.asl.json`.

moto's Step Functions backend interprets the definition (Task, Choice, Map
with its concurrency, Retry, Catch, Succeed, Fail) and invokes each Lambda
task through its Lambda backend; `invoke` is patched to dispatch by function
name to the real `functions/<task>/handler.py` modules, in-process, against a
moto DynamoDB table (see ../shared/AWS-TESTING.md). A failing handler answers
as the Python runtime does (`FunctionError`, `errorType` = the exception's
class name), so Retry and Catch see what they would see on AWS. `Faults`
injects errors and crashes at chosen task invocations; retry intervals are
scaled down (moto sleeps for real). An asynchronous invocation of the Plan
function (a directly started run) is queued and delivered as Lambda would
(`support.lambda_async`): on its own thread, retried when it fails, and,
when asked, twice at once.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import re
import threading
import time
import traceback
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any
from unittest import mock

import boto3
import httpx
import orjson
import pytest
from fastapi import FastAPI
from moto import mock_aws
from moto.awslambda.exceptions import LambdaClientError
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.dynamodb.responses import DynamoHandler
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl

from chorus.api import create_app
from chorus.settings import Settings, get_settings
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_table import create_table
from chorus.store.records import Page
from support import create_agent, create_group, parse_sse, payloads
from support.dynamodb import fake_aws_credentials
from support.lambda_async import LEASE_TTL_S, AsyncInvokes, maximum_retry_attempts
from support.moto_transactions import item_rollback_transactions

ROOT = Path(__file__).resolve().parents[2]
DEFINITION = ROOT / "statemachine" / "run.asl.json"
TABLE = "chorus-workflow-test"
ACCOUNT = "123456789012"
REGION = "us-east-1"
FUNCTIONS = {"plan": "chorus-plan", "step": "chorus-step", "finish": "chorus-finish"}
PLAN_ALIAS = f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:chorus-plan:live"
"""What the API invokes to start a run directly (`CHORUS_PLAN_FUNCTION`: the template gives the alias)."""
RETRY_SLEEP_SCALE = 0.01
"""moto sleeps each Retry interval for real: 1 s in the definition becomes 10 ms here."""


def function_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def task_of(function_name: str) -> str:
    """The task a function name or (qualified) ARN names."""
    name = function_name.split(":function:")[-1].split(":")[0]
    return next(t for t, n in FUNCTIONS.items() if n == name)


class Throttled(LambdaClientError):
    """Lambda refusing an invocation (`TooManyRequestsException`, HTTP 429)."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate exceeded")


def substituted(definition: str, **extra: str) -> str:
    """The definition as CloudFormation would deploy it (`DefinitionSubstitutions`)."""
    values = {f"{task.capitalize()}FunctionArn": function_arn(name) for task, name in FUNCTIONS.items()}
    for key, value in {**values, **extra}.items():
        definition = definition.replace("${" + key + "}", value)
    assert "${" not in definition, "a substitution the template does not provide"
    return definition


def load_handler(task: str) -> Any:
    path = ROOT / "functions" / task / "handler.py"
    spec = importlib.util.spec_from_file_location(f"chorus_function_{task}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


class Crash(BaseException):
    """A Lambda dying mid-invocation (not an exception the handler could classify)."""


@dataclass
class Faults:
    """Scripted failures: `rules[(task, n)]` runs before (or, `after=True`, after) the n-th
    invocation of `task` (1-based) and may raise; every invocation is recorded."""

    rules: dict[tuple[str, int], Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    after: dict[tuple[str, int], Callable[[dict[str, Any]], None]] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    durations: list[tuple[str, float]] = field(default_factory=list)
    """Each finished invocation's task and wall time in seconds (what Lambda bills, at its memory)."""
    windows: list[tuple[str, float, float, float]] = field(default_factory=list)
    """Each finished invocation's task, start and end (`time.perf_counter`), and the CPU time of the
    thread that ran it (its event loop's): what the cost model splits into model wait, requests and CPU."""
    errors: list[tuple[str, str]] = field(default_factory=list)
    results: list[tuple[str, Any]] = field(default_factory=list)
    """Each invocation that returned: its task and what it returned."""
    inflight: int = 0
    """Task invocations running now (a stopped execution's task runs on until it returns)."""
    refuse_async: bool = False
    """Lambda refuses (throttles) every asynchronous invocation."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    local: threading.local = field(default_factory=threading.local)
    """`local.task`: the `(task, number, event)` this thread is running (each Map iteration has its thread)."""

    def here(self) -> tuple[str, int, dict[str, Any]] | None:
        return getattr(self.local, "task", None)

    def count(self, task: str) -> int:
        return sum(1 for t, _ in self.calls if t == task)

    def record(self, task: str, event: dict[str, Any]) -> int:
        with self.lock:
            self.calls.append((task, event))
            return self.count(task)


@dataclass
class Harness:
    app: FastAPI
    client: httpx.AsyncClient
    sfn: Any
    state_machine_arn: str
    faults: Faults
    settings: Settings
    handlers: dict[str, Any]
    async_invokes: AsyncInvokes
    senders: list[asyncio.Task[httpx.Response]] = field(default_factory=list)
    """Requests sent in the background (awaited when the harness closes)."""

    @property
    def store(self) -> Any:
        return self.app.state.services.store

    def executions(self) -> list[dict[str, Any]]:
        return list(self.sfn.list_executions(stateMachineArn=self.state_machine_arn)["executions"])

    async def settle(self, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait until no execution is running (moto runs them on threads); returns them all."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            executions = await asyncio.to_thread(self.executions)
            if all(e["status"] != "RUNNING" for e in executions) and not self.faults.inflight:
                return executions
            await asyncio.sleep(0.02)
        raise AssertionError(f"executions still running: {self.executions()}")


async def background(h: Harness, group_id: str, text: str = "hello", **extra: Any) -> list[dict[str, Any]]:
    """Send a background streaming message; the API tails the run the workflow writes."""
    body = {"input": text, "background": True, **extra}
    if "messages" in extra:
        body.pop("input")
    response = await h.client.post(f"/v1/groups/{group_id}/messages/stream", json=body)
    assert response.status_code == 200, response.text
    frames = parse_sse(response.text)
    assert frames[-1].data == "[DONE]"
    return payloads(frames)


async def send(h: Harness, group_id: str, text: str, strategy: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"input": text}
    if strategy is not None:
        body["multitask_strategy"] = strategy
    response = await h.client.post(f"/v1/groups/{group_id}/messages/async", json=body)
    assert response.status_code == 200, response.text
    run: dict[str, Any] = response.json()
    return run


async def ended(h: Harness, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The runs once each is terminal (an execution a Finish starts may begin after a settle)."""
    for _ in range(100):
        await h.settle()
        now = [(await h.client.get(f"/v1/runs/{r['id']}")).json() for r in runs]
        if all(r["status"] in ("completed", "failed", "cancelled") for r in now):
            return now
    raise AssertionError(f"runs never ended: {now}")


async def logged(h: Harness, run_id: str) -> list[dict[str, Any]]:
    rows = await h.store.read_events("default", run_id, 0, 100_000)
    assert rows[-1][1] == "[DONE]", "the log is complete"
    return [orjson.loads(data) for _, data in rows[:-1]]


def check_exact(events: list[dict[str, Any]], history: list[dict[str, Any]]) -> None:
    """Gapless seq ids; every message id logged once outside abandoned attempts; history = the log's
    surviving messages, each once, in log order."""
    assert [e["seq_id"] for e in events] == list(range(1, len(events) + 1))
    abandoned = {i for e in events if "abandoned" in e for i in e["abandoned"]["message_ids"]}
    surviving = [e["id"] for e in events if "id" in e and e["id"] not in abandoned]
    stored = [m["id"] for m in history if m["message_type"] != "user_message"]
    assert stored == list(dict.fromkeys(surviving))
    assert len(set(stored)) == len(stored)
    assert not abandoned & set(stored)


async def history_of(h: Harness, group_id: str) -> list[dict[str, Any]]:
    response = await h.client.get(f"/v1/groups/{group_id}/messages", params={"order": "asc", "limit": 1000})
    result: list[dict[str, Any]] = response.json()
    return result


async def crash_mid_turn(h: Harness, task: str) -> tuple[str, list[dict[str, Any]]]:
    """Ada streams 40 tokens (flushed to the log), then the worker running her turn in `task` dies
    before the commit, once; Bob answers after her. Returns the group and the run's events."""
    ada = await create_agent(h.client, "Ada", tokens=40, delay_s=0.002)
    bob = await create_agent(h.client, "Bob", tokens=3)
    group = await create_group(h.client, [ada["id"], bob["id"]])
    original = DynamoDBStore.commit_step
    crashed: list[str] = []

    async def dying(self: DynamoDBStore, step: Any, records: Any) -> None:
        here = h.faults.here()
        if here is not None and here[0] == task and step.agent_id == ada["id"] and not crashed:
            crashed.append(step.step_key)
            raise Crash("the sandbox was killed")
        await original(self, step, records)

    with mock.patch.object(DynamoDBStore, "commit_step", dying):
        events = await background(h, group["id"], stream_tokens=True)
    assert crashed and (task, "Runtime.ExitError") in h.faults.errors
    markers = [e for e in events if "abandoned" in e]
    assert len(markers) == 1 and markers[0]["abandoned"]["message_ids"]
    return group["id"], events


async def supervisor_of_four(h: Harness) -> str:
    """A supervisor group (Boss) of four workers whose 2-token replies end in reverse order (W3's
    first), so a fan-out's results are seen out of order; its id."""
    boss = await create_agent(h.client, "Boss", tokens=2)
    workers = [await create_agent(h.client, f"W{i}", tokens=2, delay_s=0.01 * (4 - i)) for i in range(4)]
    config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
    return str((await create_group(h.client, [w["id"] for w in workers], config))["id"])


async def talking(h: Harness) -> tuple[str, str]:
    """A background run of one agent talking long (400 tokens at 10 ms), once its first token is in
    the log, so mid-turn: (group, run). An async run would not do: it logs whole messages, so its
    first event is the finished turn, and a Plan running the turn inline finishes the run next."""
    ada = await create_agent(h.client, "Ada", tokens=400, delay_s=0.01)
    group = await create_group(h.client, [ada["id"]])
    body = {"input": "talk", "stream_tokens": True, "background": True}
    h.senders.append(asyncio.create_task(h.client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)))
    for _ in range(3000):
        runs = await h.store.list_runs("default", Page(limit=1), group_id=group["id"])
        if runs and await h.store.last_seq("default", runs[0].id) > 0:
            return group["id"], runs[0].id
        await asyncio.sleep(0.01)
    raise AssertionError("the run never logged its first token")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_aws_credentials(monkeypatch, REGION)


@pytest.fixture
def workflow_settings(monkeypatch: pytest.MonkeyPatch, aws_env: None) -> Iterator[dict[str, str]]:
    """The Lambda functions' environment, as the template sets it."""
    env = {
        "CHORUS_STORE": "dynamodb",
        "CHORUS_TABLE_NAME": TABLE,
        "CHORUS_EXECUTOR": "stepfunctions",
        "CHORUS_STATE_MACHINE_ARN": f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:chorus-run",
        "CHORUS_FANOUT_CONCURRENCY": "4",
        "CHORUS_LOG_FLUSH_INTERVAL_S": "0.01",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    yield env
    get_settings.cache_clear()


@pytest.fixture
async def harness(workflow_settings: dict[str, str]) -> AsyncIterator[Harness]:
    async with open_harness(workflow_settings) as h:
        yield h


DIRECT_SETTINGS = {
    "CHORUS_WORKFLOW_INLINE_S": "300",
    "CHORUS_WORKFLOW_START": "invoke",
    "CHORUS_PLAN_FUNCTION": PLAN_ALIAS,
    "CHORUS_LEASE_TTL_S": str(LEASE_TTL_S),
}
"""Runs started directly (`CHORUS_WORKFLOW_START=invoke`) on the Plan function with inline turns, as the
template deploys them, and a short lease (`LEASE_TTL_S`) that Lambda's scaled retries outwait."""


@asynccontextmanager
async def direct_harness(workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    for name, value in DIRECT_SETTINGS.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    async with open_harness({**workflow_settings, **DIRECT_SETTINGS}) as h:
        assert h.settings.workflow_start == "invoke"
        yield h


@pytest.fixture
async def direct(workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The harness as the template deploys it (`DIRECT_SETTINGS`)."""
    async with direct_harness(workflow_settings, monkeypatch) as h:
        yield h


@pytest.fixture(params=["execution", "direct"])
async def started(
    request: pytest.FixtureRequest, workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Harness]:
    """For a test that must hold whichever way a run starts: as an execution (every turn a Step), or directly."""
    if request.param == "direct":
        async with direct_harness(workflow_settings, monkeypatch) as h:
            yield h
    else:
        async with open_harness(workflow_settings) as h:
            yield h


def is_direct(h: Harness) -> bool:
    return h.settings.workflow_start == "invoke"


@asynccontextmanager
async def inline_harness(workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    monkeypatch.setenv("CHORUS_WORKFLOW_INLINE_S", "300")
    get_settings.cache_clear()
    async with open_harness(workflow_settings) as h:
        assert h.settings.workflow_inline_s == 300
        yield h


@pytest.fixture
async def inline(workflow_settings: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Harness]:
    """The harness with inline turns on (`CHORUS_WORKFLOW_INLINE_S`, as the template deploys it)."""
    async with inline_harness(workflow_settings, monkeypatch) as h:
        yield h


IDS = re.compile(r"(message|run|step|agent|group)-[0-9a-f-]{36}")


def elided(value: Any, varying: frozenset[str]) -> Any:
    """`value` (events, a record) with the keys in `varying` dropped and ids made alike: what two runs
    of the same conversation should have in common."""
    if isinstance(value, str):
        return IDS.sub(r"\1-*", value)
    if isinstance(value, dict):
        return {k: elided(v, varying) for k, v in value.items() if k not in varying}
    if isinstance(value, list):
        return [elided(v, varying) for v in value]
    return value


@asynccontextmanager
async def open_harness(workflow_settings: dict[str, str]) -> AsyncIterator[Harness]:
    """The API, moto's DynamoDB and Step Functions executing the definition, and the task handlers;
    `workflow_settings` is the environment already set (the fixture's, or a benchmark's own)."""
    faults = Faults()
    handlers = {task: load_handler(task) for task in FUNCTIONS}
    by_name = {name: handlers[task] for task, name in FUNCTIONS.items()}
    lock = threading.RLock()
    original_call = DynamoHandler.call_action
    original_sleep = time.sleep

    def atomic(self: DynamoHandler) -> Any:  # DynamoDB applies each request atomically; moto, with this lock
        with lock:
            return original_call(self)

    def busy(change: int) -> None:
        with faults.lock:
            faults.inflight += change

    def attempt(event: dict[str, Any]) -> bool:
        errors: dict[str, str] = {}
        run_task("plan", event, errors)
        return bool(errors)

    async_invokes = AsyncInvokes(attempt, maximum_retry_attempts(ROOT / "template.yaml"), busy)

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
        event = json.loads(body)
        task = task_of(function_name)
        if headers.get("X-Amz-Invocation-Type") == "Event":
            if faults.refuse_async:
                raise Throttled
            async_invokes.submit(event)
            return b""
        return run_task(task, event, response_headers)

    def run_task(task: str, event: dict[str, Any], response_headers: dict[str, str]) -> bytes:
        started, cpu = time.perf_counter(), time.thread_time()
        number = faults.record(task, event)
        faults.local.task = (task, number, event)
        with faults.lock:
            faults.inflight += 1
        try:
            if (task, number) in faults.rules:
                faults.rules[task, number](event)
            result = by_name[FUNCTIONS[task]](event, None)
            faults.results.append((task, result))
            if (task, number) in faults.after:
                faults.after[task, number](event)
            return json.dumps(result).encode()
        except (Exception, Crash) as exc:
            # what the Python runtime reports: the exception's class, or a sandbox that died
            kind = "Runtime.ExitError" if isinstance(exc, Crash) else type(exc).__name__
            faults.errors.append((task, kind))
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorMessage": str(exc), "errorType": kind, "stackTrace": traceback.format_exception(exc)[-3:]}
            return json.dumps(payload).encode()
        finally:
            faults.local.task = None
            with faults.lock:
                ended = time.perf_counter()
                faults.durations.append((task, ended - started))
                faults.windows.append((task, started, ended, time.thread_time() - cpu))
                faults.inflight -= 1

    config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
    with (
        mock_aws(config=config),  # type: ignore[call-overload]
        mock.patch.object(DynamoHandler, "call_action", atomic),
        item_rollback_transactions(),
        mock.patch.object(LambdaSimpleBackend, "invoke", invoke),
        mock.patch.object(retrier_decl.time, "sleep", lambda s: original_sleep(s * RETRY_SLEEP_SCALE)),  # type: ignore[attr-defined]
    ):
        session = boto3.Session(region_name=REGION)
        create_table(session.client("dynamodb"), TABLE)
        sfn = session.client("stepfunctions")
        role = f"arn:aws:iam::{ACCOUNT}:role/chorus-run"
        machine = sfn.create_state_machine(
            name="chorus-run", definition=substituted(DEFINITION.read_text()), roleArn=role
        )["stateMachineArn"]
        assert machine == workflow_settings["CHORUS_STATE_MACHINE_ARN"]
        settings = get_settings()
        app = create_app(settings)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
                    harness = Harness(app, client, sfn, machine, faults, settings, handlers, async_invokes)
                    yield harness
                    await harness.settle()
                    await asyncio.gather(*harness.senders)
        finally:
            for thread in async_invokes.threads:
                await asyncio.to_thread(thread.join)
            for handler in handlers.values():
                await asyncio.to_thread(handler.reset)
