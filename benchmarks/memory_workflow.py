"""Peak memory of the workflow functions' processes through background runs: what `WorkflowMemorySize` must hold.

Run by `memory.py` against its moto server (DynamoDB, and Step Functions
that records executions without running them). With the template's default
`BackgroundStart=Invoke` the API starts a background run by an asynchronous
invocation of the Plan function, which runs a round robin alone. So:

- an API server (uvicorn, the template's `ApiFunction` environment) creates
  the agents, the group and each run through `POST .../messages/async`, as a
  client would; its Lambda endpoint (`AWS_ENDPOINT_URL_LAMBDA`) is a loopback
  stand-in that queues the invocation's payload, the direct-start event;
- each function is one execution environment (`lambda_env.FunctionProcess`):
  a child interpreter that imports `functions/<task>/handler.py` with the
  template's environment for that function (`AWS_LAMBDA_FUNCTION_NAME` and
  `LAMBDA_TASK_ROOT` set, so Powertools and the X-Ray SDK load as on Lambda)
  and handles the events handed to it one at a time;
- the model is `benchmarks/openai_fake.py` (`--tokens` tokens a reply) on
  `openai/gpt-4o-mini`, so the OpenAI SDK is in the process as a deployed
  provider's SDK would be.

`--runs` background round robins of 3 agents on one group are delivered to
the Plan process in turn; each must complete within its invocation. Then one
supervisor group (a scripted manager broadcasting to 4 workers on the fake):
its direct Plan hands the run to an execution for the parallel round, and the
execution recorded by moto is driven by hand as the definition would drive it
on its happy path (Plan; each item of a `steps` action to the Step process,
one after another; Plan again; Finish unless Plan answered `done`). The Step
process is one environment that ran all 4 worker turns: on AWS the Map may
spread them over 4, so its peak is an upper bound for one.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import boto3
import httpx

from chorus.devserver import running_server
from floor import uvicorn_app
from lambda_env import ACCOUNT, REGION, ROOT, STACK, FunctionProcess, InvokeQueue, Template

FUNCTIONS = {"plan": "PlanFunction", "step": "StepFunction", "finish": "FinishFunction"}
MODEL = "openai/gpt-4o-mini"


def function_name(task: str) -> str:
    return f"{STACK}-{task}"


def lambda_arn(name: str) -> str:
    return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}"


def state_machine(sfn: Any, role: str = f"arn:aws:iam::{ACCOUNT}:role/{STACK}-run") -> str:
    """The run state machine, created under the name the template gives it (moto only records executions)."""
    definition = (ROOT / "statemachine" / "run.asl.json").read_text()
    for task in FUNCTIONS:
        definition = definition.replace("${" + f"{task.capitalize()}FunctionArn" + "}", lambda_arn(function_name(task)))
    arn: str = sfn.create_state_machine(name=f"{STACK}-run", definition=definition, roleArn=role)["stateMachineArn"]
    return arn


class Workflow:
    """The API as a client's counterpart, the function processes, and the queue of async invocations."""

    def __init__(self, client: httpx.Client, invokes: InvokeQueue, env: dict[str, str], template: Template) -> None:
        self.client, self.invokes, self.env, self.template = client, invokes, env, template
        self.processes: dict[str, FunctionProcess] = {}
        self.started_mb: dict[str, float] = {}

    def process(self, task: str) -> FunctionProcess:
        """The task's execution environment, started (its init measured) on first use."""
        if task not in self.processes:
            env = {
                **self.env,
                **self.template.environment(FUNCTIONS[task]),
                "AWS_LAMBDA_FUNCTION_NAME": function_name(task),
                "LAMBDA_TASK_ROOT": str(ROOT / "functions" / task),
            }
            self.processes[task] = FunctionProcess(ROOT / "functions" / task, env)
            self.started_mb[task] = self.processes[task].peak_mb()
        return self.processes[task]

    def agent(self, name: str, **extra: Any) -> str:
        body = {"name": name, "system": f"You are {name}.", "model": MODEL, **extra}
        response = self.client.post("/v1/agents", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def group(self, agent_ids: list[str], manager: dict[str, Any] | None = None) -> str:
        body: dict[str, Any] = {"agent_ids": agent_ids, "description": "memory"}
        if manager is not None:
            body["manager_config"] = manager
        response = self.client.post("/v1/groups", json=body)
        assert response.status_code == 200, response.text
        return str(response.json()["id"])

    def background_run(self, group_id: str) -> tuple[str, dict[str, Any]]:
        """Send a background message; the run's id and the direct-start event the API sent the Plan function."""
        response = self.client.post(f"/v1/groups/{group_id}/messages/async", json={"input": "go"})
        assert response.status_code == 200, response.text
        name, event = self.invokes.next()
        assert name == self.template.values["PlanFunction.Alias"], name
        assert event.get("direct") is True, event
        assert event["run_id"] == response.json()["id"], event
        return str(event["run_id"]), event

    def completed(self, run_id: str, completion_tokens: int) -> None:
        """The run ended well, its model calls on the fake as long as it makes them (the runs measured are the
        ones meant); a scripted manager's calls come on top."""
        run = self.client.get(f"/v1/runs/{run_id}").json()
        assert run["status"] == "completed", run
        usage = self.client.get(f"/v1/runs/{run_id}/usage").json()
        assert completion_tokens <= usage["completion_tokens"] <= completion_tokens + 100, usage

    def execute(self, sfn: Any, machine: str, run_id: str) -> None:
        """The execution a direct Plan started for the run, driven on the definition's happy path."""
        arn = f"arn:aws:states:{REGION}:{ACCOUNT}:execution:{machine.rsplit(':', 1)[-1]}:{run_id}"
        state: dict[str, Any] = json.loads(sfn.describe_execution(executionArn=arn)["input"])
        while True:
            state = self.process("plan").invoke(state)
            if state["action"] == "steps":
                for item in state["steps"]:
                    self.process("step").invoke(item)
                continue
            if state["action"] != "done":
                assert state["action"] != "continued", state
                self.process("finish").invoke(state)
            return


def measure(moto_url: str, table: str, runs: int, tokens: int) -> dict[str, Any]:
    """The workflow functions' peaks; `memory.py` has set the AWS credentials and region in `os.environ`."""
    sfn = boto3.client("stepfunctions", endpoint_url=moto_url, region_name=REGION)
    machine = state_machine(sfn)
    invokes = InvokeQueue()
    with invokes.serving() as lambda_url, uvicorn_app("openai_fake", {"OPENAI_FAKE_TOKENS": str(tokens)}) as fake:
        template = Template(
            refs={
                "Table": table,
                "ToolRunnerFunction": function_name("tool-runner"),
                "PlanFunction.Alias": f"{lambda_arn(function_name('plan'))}:live",
            }
        )
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT / "layers" / "chorus"),
            **{k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")},
            "AWS_REGION": REGION,
            "AWS_ENDPOINT_URL": moto_url,
            "AWS_ENDPOINT_URL_LAMBDA": lambda_url,
            "AWS_XRAY_CONTEXT_MISSING": "LOG_ERROR",
            "OPENAI_BASE_URL": f"{fake}/v1",
            "OPENAI_API_KEY": "memory-bench",
        }
        api_env = {**env, **template.environment("ApiFunction"), "AWS_LAMBDA_FUNCTION_NAME": function_name("api")}
        with running_server(api_env, quiet=True) as api, httpx.Client(base_url=api.url, timeout=120) as client:
            flow = Workflow(client, invokes, env, template)
            try:
                return _measure(flow, sfn, machine, runs, tokens, template)
            finally:
                for process in flow.processes.values():
                    process.close()


def _measure(flow: Workflow, sfn: Any, machine: str, runs: int, tokens: int, template: Template) -> dict[str, Any]:
    started = time.perf_counter()
    plan = flow.process("plan")
    group = flow.group([flow.agent(f"A{i}") for i in range(3)])
    after: list[float] = []
    for _ in range(runs):
        run_id, event = flow.background_run(group)
        result = plan.invoke(event)
        assert result.get("action") == "done", result
        flow.completed(run_id, 3 * tokens)
        after.append(plan.peak_mb())
    round_robin_peak = plan.peak_mb()
    boss = flow.agent("Boss", model="scripted/default")
    workers = [flow.agent(f"W{i}") for i in range(4)]
    supervisor = flow.group(workers, {"manager_type": "supervisor", "manager_agent_id": boss})
    run_id, event = flow.background_run(supervisor)
    result = plan.invoke(event)
    assert result.get("outcome") == "handed_over", result
    flow.execute(sfn, machine, run_id)
    flow.completed(run_id, 4 * tokens)
    functions: dict[str, Any] = {}
    for task, process in flow.processes.items():
        configured = template.memory_mb(FUNCTIONS[task])
        peak = process.peak_mb()
        functions[task] = {
            "started_mb": round(flow.started_mb[task], 1),
            "peak_mb": round(peak, 1),
            "memory_size_mb": configured,
            "peak_over_configured": round(peak / configured, 3),
        }
    functions["plan"]["peak_mb_after_first_run"] = round(after[0], 1)
    functions["plan"]["peak_mb_round_robin"] = round(round_robin_peak, 1)
    return {
        "model": f"{MODEL} on openai_fake.py",
        "background_runs": runs,
        "supervisor_workers": len(workers),
        "functions": functions,
        "seconds": round(time.perf_counter() - started, 1),
    }


if __name__ == "__main__":
    raise SystemExit(f"run it through memory.py ({Path(__file__).name} needs its moto server)")
