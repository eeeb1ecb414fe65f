"""What a run costs on AWS: measured counts of what AWS bills, times list prices, per 1,000 runs.

Method: the workflow tests' harness (`tests/support/workflow_harness.py`):
the API app in-process on moto's DynamoDB, background runs executed by
moto's Step Functions interpreting `statemachine/run.asl.json`, every Lambda
task dispatched to the real `functions/<task>/handler.py`. Each scenario
creates its agents and group (not counted), then one run is measured:

- Lambda: one invocation of the API function per HTTP request of the run
  (the send; the resume), billed for its wall time (a streamed response
  keeps it running to the end); one invocation per task the state machine
  ran, and per attempt of a directly started run's Plan (the template's
  `BackgroundStart`, `Invoke` by default: an async invocation of the Plan
  function, no execution unless it hands the run over), billed for the
  handler's wall time; each at its memory in `template.yaml` (parameter
  defaults), per 1 ms. Each invocation's time is what it would last on
  Lambda (`lambda_time.py`): the model wait as measured, each DynamoDB
  request a network round trip instead of moto's time (none for one made
  while the function waited on the model anyway), and the handler's own
  CPU time stretched by its share of a vCPU (`memory / 1769`: at 256 MB it
  runs 6.9 times slower than on this machine's core), each part rounded up,
  so a smaller memory size is not made to look cheaper than it is.
- Model time: the scripted agents pace their tokens so that each model call
  takes `--model-s` seconds (default 2): on AWS the function waits for the
  model that long, and the log is written as the tokens come. A tool-calling
  turn (the supervisor's broadcast) streams 3 pieces, so it takes 3/tokens of that.
- Step Functions: Standard state transitions = the `*StateEntered` events of
  the run's executions' history (continuations and children included);
  Express = one request per execution and its duration (start to stop,
  rounded up to 100 ms) at 64 MB. The type the template deploys is billed;
  the other is shown for comparison.
- DynamoDB: write and read request units of every request, from item sizes
  (`dynamodb_units.py`; moto's ConsumedCapacity is a constant).
- Bytes: the response bodies the API streams (Function URL streaming is
  free up to 6 MB a response); transfer out to the internet is shown apart,
  as it depends on where the client is.

A sleeptime run's figures include the runs it starts for its sleeptime agents
(started the way the template starts background runs, and measured until they end).

Prices: `aws_prices.py`. Writes
`benchmarks/results/cost.json` and prints a table; `--quick` runs the
scenarios with 0.05 s of model time (the figures are then not the 2 s ones).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import math
import os
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT / "tests"))

from aws_prices import ARCHITECTURE, PRICES, PRICES_DATE, REGION  # noqa: E402
from dynamodb_units import metering  # noqa: E402
from lambda_env import Template  # noqa: E402
from lambda_time import FunctionClock, Window, split  # noqa: E402

MEASURED_SETTINGS = ("CHORUS_FANOUT_CONCURRENCY", "CHORUS_WORKFLOW_INLINE_S", "CHORUS_LOG_FLUSH_INTERVAL_S")
"""Settings the template gives the functions that change what a run makes AWS do: measured as deployed."""
TASK_FUNCTIONS = {"api": "ApiFunction", "plan": "PlanFunction", "step": "StepFunction", "finish": "FinishFunction"}


@dataclass(frozen=True)
class Scenario:
    name: str
    manager: str
    agents: int
    tokens: int
    mode: str
    """`foreground` (a streamed send), `background` (an async send: the workflow runs it), `resume`
    (the stream of the previous background run, replayed after it finished)."""


SCENARIOS = [
    Scenario("foreground round robin 3 x 20 tokens", "round_robin", 3, 20, "foreground"),
    Scenario("foreground round robin 3 x 200 tokens", "round_robin", 3, 200, "foreground"),
    Scenario("background round robin 3 x 200 tokens", "round_robin", 3, 200, "background"),
    Scenario("background round robin 3 x 20 tokens", "round_robin", 3, 20, "background"),
    Scenario("resume of a finished run (the 3 x 20 one)", "round_robin", 3, 20, "resume"),
    Scenario("background supervisor + 4 workers x 20 tokens", "supervisor", 4, 20, "background"),
    Scenario("background sleeptime, 1 + 2 sleeptime agents x 20 tokens", "sleeptime", 2, 20, "background"),
]


@dataclass
class Deployment:
    """What the template deploys that the bill depends on: memory per function, the machine's type."""

    memory_mb: dict[str, int]
    workflow_type: str
    environment: dict[str, str]
    """The template's `CHORUS_*` settings that change what a run does (`MEASURED_SETTINGS`)."""


def deployment(template: Path = ROOT / "template.yaml") -> Deployment:
    t = Template(path=template)
    memory = {task: t.memory_mb(name) for task, name in TASK_FUNCTIONS.items()}
    resources = t.doc["Resources"]
    workflow_type = str(t.resolve(resources["RunStateMachine"]["Properties"].get("Type", "STANDARD")))
    shared = t.doc["Globals"]["Function"]["Environment"]["Variables"]
    environment = {name: str(t.resolve(shared[name])) for name in MEASURED_SETTINGS if name in shared}
    api = resources[TASK_FUNCTIONS["api"]]["Properties"]["Environment"]["Variables"]
    environment["CHORUS_WORKFLOW_START"] = str(t.resolve(api["CHORUS_WORKFLOW_START"]))  # the `BackgroundStart` `!If`
    return Deployment(memory, workflow_type, environment)


@dataclass
class Counts:
    """What one run made AWS do."""

    model_calls: int = 0
    lambda_invocations: dict[str, int] = field(default_factory=dict)
    lambda_seconds: dict[str, float] = field(default_factory=dict)
    """Wall time measured here, on a whole core."""
    lambda_model_wait_seconds: dict[str, float] = field(default_factory=dict)
    """Of that, waiting on the model (its pace)."""
    lambda_cpu_seconds: dict[str, float] = field(default_factory=dict)
    """The handler's own CPU time, on this machine's core."""
    lambda_dynamodb_requests: dict[str, float] = field(default_factory=dict)
    """The DynamoDB requests made while it ran."""
    lambda_billed_seconds: dict[str, float] = field(default_factory=dict)
    """What it would last on Lambda at its memory (`lambda_time.FunctionTime.on_lambda`)."""
    lambda_gb_seconds: dict[str, float] = field(default_factory=dict)
    executions: int = 0
    state_transitions: int = 0
    express_billed_seconds: float = 0.0
    dynamodb_write_units: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_requests: dict[str, int] = field(default_factory=dict)
    dynamodb_units_by_operation: dict[str, float] = field(default_factory=dict)
    dynamodb_write_units_by_index: dict[str, float] = field(default_factory=dict)
    streamed_bytes: int = 0
    largest_response_bytes: int = 0


def bill(counts: Counts, workflow_type: str) -> dict[str, float]:
    """Dollars per 1,000 runs by service (model tokens excluded)."""
    p = PRICES
    invocations = sum(counts.lambda_invocations.values())
    streamed_over = max(0, counts.largest_response_bytes - p.lambda_stream_free_bytes)
    standard = counts.state_transitions * p.sfn_standard_transition
    express = (
        counts.executions * p.sfn_express_request
        + counts.express_billed_seconds * (p.sfn_express_memory_mb / 1024) * p.sfn_express_gb_second
    )
    per_run = {
        "lambda_requests": invocations * p.lambda_request,
        "lambda_duration": sum(counts.lambda_gb_seconds.values()) * p.lambda_gb_second,
        "lambda_streaming": streamed_over / 1024**3 * p.lambda_stream_gb,
        "step_functions": standard if workflow_type == "STANDARD" else express,
        "dynamodb_writes": counts.dynamodb_write_units * p.dynamodb_write_unit,
        "dynamodb_reads": counts.dynamodb_read_units * p.dynamodb_read_unit,
    }
    dollars = {k: round(v * 1000, 5) for k, v in per_run.items()}
    dollars["total"] = round(sum(per_run.values()) * 1000, 5)
    dollars["step_functions_if_standard"] = round(standard * 1000, 5)
    dollars["step_functions_if_express"] = round(express * 1000, 5)
    dollars["transfer_out_to_internet"] = round(counts.streamed_bytes / 1024**3 * p.transfer_out_gb * 1000, 5)
    return dollars


def billed_gb_seconds(seconds: float, memory_mb: int) -> float:
    return math.ceil(seconds * 1000) / 1000 * memory_mb / 1024


async def history_counts(h: Any, names: set[str]) -> tuple[int, int, float]:
    """(executions, state transitions, Express-billed seconds) of the named executions."""
    transitions, billed = 0, 0.0
    executions = [e for e in await asyncio.to_thread(h.executions) if e["name"] in names]
    for execution in executions:
        arn = execution["executionArn"]
        events: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"executionArn": arn, "maxResults": 1000}
        while True:
            page = await asyncio.to_thread(h.sfn.get_execution_history, **kwargs)
            events += page["events"]
            if not page.get("nextToken"):
                break
            kwargs["nextToken"] = page["nextToken"]
        transitions += sum(1 for e in events if e["type"].endswith("StateEntered"))
        described = await asyncio.to_thread(h.sfn.describe_execution, executionArn=arn)
        seconds = (described["stopDate"] - described["startDate"]).total_seconds()
        billed += math.ceil(seconds * 1000 / PRICES.sfn_express_billing_ms) * PRICES.sfn_express_billing_ms / 1000
    return len(executions), transitions, billed


class Runner:
    """Runs the scenarios on one harness, one after another, metering each."""

    def __init__(self, h: Any, meter: Any, memory: dict[str, int], model_s: float, clock: FunctionClock) -> None:
        self.h, self.meter, self.memory, self.model_s, self.clock = h, meter, memory, model_s, clock
        self.last_background_run: str | None = None

    async def group(self, s: Scenario) -> str:
        from support import create_agent, create_group

        pace = {"tokens": s.tokens, "delay_s": self.model_s / s.tokens}
        if s.manager == "supervisor":
            boss = await create_agent(self.h.client, "Boss", **pace)
            workers = [await create_agent(self.h.client, f"W{i}", **pace) for i in range(s.agents)]
            config = {"manager_type": "supervisor", "manager_agent_id": boss["id"]}
            return str((await create_group(self.h.client, [w["id"] for w in workers], config))["id"])
        if s.manager == "sleeptime":  # the foreground agent answers; each other one gets a run of its own
            boss = await create_agent(self.h.client, "Boss", **pace)
            sleepers = [await create_agent(self.h.client, f"S{i}", **pace) for i in range(s.agents)]
            config = {"manager_type": "sleeptime", "manager_agent_id": boss["id"], "sleeptime_agent_frequency": 1}
            return str((await create_group(self.h.client, [a["id"] for a in sleepers], config))["id"])
        agents = [await create_agent(self.h.client, f"A{i}", **pace) for i in range(s.agents)]
        return str((await create_group(self.h.client, [a["id"] for a in agents]))["id"])

    async def measure(self, s: Scenario) -> dict[str, Any]:
        h = self.h
        group_id = None if s.mode == "resume" else await self.group(s)
        await h.settle()
        before_names = {e["name"] for e in await asyncio.to_thread(h.executions)}
        tasks_before = len(h.faults.windows)
        served_before = len(self.meter.served)
        clock_before, paces_before = self.clock.snapshot(), len(self.clock.paces)
        writes0, reads0, requests0, units0, index0 = self.meter.snapshot()
        api: list[tuple[float, int]] = []
        started, cpu = time.perf_counter(), time.thread_time()
        if s.mode == "foreground":
            body = {"input": "go", "stream_tokens": True}
            response = await h.client.post(f"/v1/groups/{group_id}/messages/stream", json=body)
            run_id = next(json.loads(line[6:])["run_id"] for line in response.text.splitlines()
                          if line.startswith("data: {"))  # fmt: skip
        elif s.mode == "background":
            response = await h.client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "go"})
            run_id = response.json()["id"]
            self.last_background_run = run_id
        else:
            run_id = self.last_background_run
            response = await h.client.post(f"/v1/runs/{run_id}/stream", json={})
        assert response.status_code == 200, response.text
        ended = time.perf_counter()
        api.append((ended - started, len(response.content)))
        windows = [Window("api", started, ended)]
        self.clock.add_cpu("api", time.thread_time() - cpu)  # the API's event loop is this thread's
        await h.settle()
        run = await h.store.get_run("default", run_id)
        assert run.status == "completed", (run.status, run.stop_reason)
        writes1, reads1, requests1, units1, index1 = self.meter.snapshot()
        names = {e["name"] for e in await asyncio.to_thread(h.executions)} - before_names
        executions, transitions, express_s = await history_counts(h, names)
        for task, start, end, cpu_s in h.faults.windows[tasks_before:]:
            windows.append(Window(task, start, end))
            self.clock.add_cpu(task, cpu_s)
        counts = Counts()
        steps = [] if s.mode == "resume" else await h.store.list_steps("default", run_id)
        counts.model_calls = sum(1 for step in steps if step.agent_id is not None)  # not the input's
        waited, cpu_s = self.clock.since(clock_before)
        times = split(windows, self.meter.served[served_before:], waited, cpu_s, self.clock.paces[paces_before:])
        billed = {task: t.on_lambda(self.memory[task]) for task, t in times.items()}
        counts.lambda_invocations = dict(Counter(w.task for w in windows))
        counts.lambda_seconds = {k: round(t.wall_s, 3) for k, t in times.items()}
        counts.lambda_model_wait_seconds = {k: round(t.model_wait_s, 3) for k, t in times.items()}
        counts.lambda_cpu_seconds = {k: round(t.cpu_s, 3) for k, t in times.items()}
        counts.lambda_dynamodb_requests = {k: round(t.requests, 1) for k, t in times.items()}
        counts.lambda_billed_seconds = {k: round(v, 3) for k, v in billed.items()}
        counts.lambda_gb_seconds = {k: round(billed_gb_seconds(v, self.memory[k]), 4) for k, v in billed.items()}
        counts.executions, counts.state_transitions = executions, transitions
        counts.express_billed_seconds = express_s
        counts.dynamodb_write_units = writes1 - writes0
        counts.dynamodb_read_units = reads1 - reads0
        counts.dynamodb_requests = dict(sorted((requests1 - requests0).items()))
        counts.dynamodb_units_by_operation = {k: round(v, 1) for k, v in sorted((units1 - units0).items())}
        counts.dynamodb_write_units_by_index = dict(sorted((index1 - index0).items()))
        counts.streamed_bytes = sum(b for _, b in api)
        counts.largest_response_bytes = max(b for _, b in api)
        return {"scenario": asdict(s), "run_id": run_id, "counts": asdict(counts), "counts_object": counts}


async def measure_all(scenarios: list[Scenario], model_s: float, dep: Deployment) -> list[dict[str, Any]]:
    from chorus.store.dynamodb_keys import INDEXES, ORDER_KEY
    from support.workflow_harness import open_harness

    env = workflow_environment(dep.environment)
    with metering({name: (attribute, ORDER_KEY) for name, attribute in INDEXES.items()}) as meter:
        async with open_harness(env) as h:
            with FunctionClock(h.faults.here, meter).running() as clock:
                results = await measure_each(Runner(h, meter, dep.memory_mb, model_s, clock), scenarios, dep)
    return results


async def measure_each(runner: Runner, scenarios: list[Scenario], dep: Deployment) -> list[dict[str, Any]]:
    await runner.measure(Scenario("warm-up", "round_robin", 1, 1, "background"))  # cold starts aside
    results = []
    for scenario in scenarios:
        print(f"  {scenario.name}…", file=sys.stderr, flush=True)
        result = await runner.measure(scenario)
        result["dollars_per_1000_runs"] = bill(result.pop("counts_object"), dep.workflow_type)
        results.append(result)
    return results


def workflow_environment(deployed: dict[str, str]) -> dict[str, str]:
    """The Lambda functions' environment as the workflow tests set it (their fixture does it with
    monkeypatch), with the template's own values of `MEASURED_SETTINGS`."""
    from chorus.settings import get_settings
    from support.workflow_harness import ACCOUNT, PLAN_ALIAS, TABLE
    from support.workflow_harness import REGION as HARNESS_REGION

    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": HARNESS_REGION,
        "CHORUS_STORE": "dynamodb",
        "CHORUS_TABLE_NAME": TABLE,
        "CHORUS_EXECUTOR": "stepfunctions",
        "CHORUS_STATE_MACHINE_ARN": f"arn:aws:states:{HARNESS_REGION}:{ACCOUNT}:stateMachine:chorus-run",
        **deployed,
    }
    if env.get("CHORUS_WORKFLOW_START") == "invoke":
        env["CHORUS_PLAN_FUNCTION"] = PLAN_ALIAS
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(env)
    get_settings.cache_clear()
    return env


def table(results: list[dict[str, Any]]) -> str:
    head = ("scenario", "invocations", "GB-s", "transitions", "WRU", "RRU", "KB out", "$/1000 runs", "largest part")
    lines = [head]
    for r in results:
        c, d = r["counts"], r["dollars_per_1000_runs"]
        parts = {
            k: v for k, v in d.items() if k not in ("total",) and not k.startswith(("step_functions_if", "transfer"))
        }
        top = max(parts, key=lambda k: parts[k])
        lines.append((
            r["scenario"]["name"],
            str(sum(c["lambda_invocations"].values())),
            f"{sum(c['lambda_gb_seconds'].values()):.3f}",
            str(c["state_transitions"]),
            f"{c['dynamodb_write_units']:g}",
            f"{c['dynamodb_read_units']:g}",
            f"{c['streamed_bytes'] / 1024:.1f}",
            f"{d['total']:.4f}",
            f"{top} {d[top]:.4f}",
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) for line in lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-s", type=float, default=2.0, help="seconds each model call takes")
    parser.add_argument("--quick", action="store_true", help="0.05 s per model call (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "cost.json")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a template setting other than its default (e.g. CHORUS_LOG_FLUSH_INTERVAL_S=0.25)",
    )
    parser.add_argument("--only", default="", help="only the scenarios whose name contains this")
    args = parser.parse_args()
    model_s = 0.05 if args.quick else args.model_s
    dep = deployment()
    dep.environment.update(dict(item.split("=", 1) for item in args.set))
    started = datetime.datetime.now(datetime.UTC)
    scenarios = [s for s in SCENARIOS if args.only in s.name or (s.mode == "background" and "resume" in args.only)]
    results = asyncio.run(measure_all(scenarios, model_s, dep))
    document = {
        "benchmark": "cost",
        "measured_at": started.isoformat(timespec="seconds"),
        "model_s_per_call": model_s,
        "prices": {"date": PRICES_DATE, "region": REGION, "architecture": ARCHITECTURE, **asdict(PRICES)},
        "deployment": asdict(dep),
        "scenarios": results,
        "python": sys.version.split()[0],
        "cores": os.cpu_count(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2) + "\n")
    print(json.dumps(document, indent=2))  # stdout: the JSON `report.py` collects
    print("\n" + table(results), file=sys.stderr)


if __name__ == "__main__":
    main()
