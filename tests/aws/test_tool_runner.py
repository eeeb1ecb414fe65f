"""The `lambda` tool executor and the ToolRunner function, through moto's Lambda with the real handler.

moto's simple Lambda backend is patched to hand each invocation to
`functions/toolrunner/handler.py` in-process and answer as the Python runtime
does (a raised exception becomes a `FunctionError` with its class as
`errorType`), so the executor goes through botocore's real `Invoke` wire:
the `TenantId` header, the payload, `FunctionError`. The ToolRunner runs
each tool with the local runner, so the parity tests compare every answer
with what `run_tool` gives on this machine: the model must read the same
whichever executor ran the tool. Service failures moto cannot produce
(throttling, a slow invoke) come from a stub client.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.exceptions import ClientError, EndpointConnectionError
from moto import mock_aws
from moto.awslambda_simple.models import LambdaSimpleBackend

from chorus.settings import Settings
from chorus.tools.execution import ToolCall, ToolExecutor
from chorus.tools.lambda_executor import LambdaToolExecutor
from chorus.tools.runner_wire import REQUEST_BYTE_LIMIT, RESPONSE_BYTE_LIMIT, ToolRunRequest, lambda_tenant_id
from chorus.tools.sandbox import INHERITED_ENV, OUTPUT_BYTE_LIMIT, run_tool, stream_cut_marker, timed_out
from chorus.tools.sandbox import value_cut_marker as cut_marker
from chorus.tools.tool_runner import ToolRequestRefused, fit_response
from support.dynamodb import fake_aws_credentials
from support.workflow_harness import ROOT, load_handler

FUNCTION = "chorus-tool-runner"
REGION = "us-east-1"
FUNCTION_TIMEOUT_S = 60.0
handler = load_handler("toolrunner")


class Crash(BaseException):
    """The runtime dying mid-invocation (the handler's process killed)."""


@dataclass
class FakeContext:
    """The parts of the Lambda context the handler reads."""

    deadline: float

    def get_remaining_time_in_millis(self) -> int:
        return int((self.deadline - time.monotonic()) * 1000)


@dataclass
class ToolRunner:
    """The ToolRunner function on moto: what each invocation received, and faults to inject."""

    client: Any
    tenants: list[str | None] = field(default_factory=list)
    events: list[Any] = field(default_factory=list)
    fault: Callable[[Any, dict[str, str]], bytes] | None = None
    """Answers instead of the handler (it may set `x-amz-function-error` or raise `Crash`)."""

    def executor(self) -> LambdaToolExecutor:
        return LambdaToolExecutor(function_name=FUNCTION, client=self.client)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch) -> Iterator[ToolRunner]:
    fake_aws_credentials(monkeypatch, REGION)
    state: dict[str, ToolRunner] = {}

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
        tool_runner = state["runner"]
        assert function_name.split(":")[-1] == FUNCTION
        event = json.loads(body)
        tool_runner.tenants.append(headers.get("X-Amz-Tenant-Id"))
        tool_runner.events.append(event)
        try:
            if tool_runner.fault is not None:
                return tool_runner.fault(event, response_headers)
            result = handler(event, FakeContext(time.monotonic() + FUNCTION_TIMEOUT_S))
            return json.dumps(result).encode()
        except (Exception, Crash) as exc:  # what the Python runtime reports
            kind = "Runtime.ExitError" if isinstance(exc, Crash) else type(exc).__name__
            response_headers["x-amz-function-error"] = "Unhandled"
            trace = traceback.format_exception(exc)[-3:]
            return json.dumps({"errorMessage": str(exc), "errorType": kind, "stackTrace": trace}).encode()

    with (
        mock_aws(config={"lambda": {"use_docker": False}}),
        mock.patch.object(LambdaSimpleBackend, "invoke", invoke),
    ):
        state["runner"] = ToolRunner(boto3.Session(region_name=REGION).client("lambda"))
        yield state["runner"]


def call(source: str, name: str = "f", tenant: str = "acme", **fields: Any) -> ToolCall:
    return ToolCall(tenant_id=tenant, source_code=source, name=name, arguments=fields.pop("arguments", {}), **fields)


PARITY: dict[str, tuple[str, dict[str, Any]]] = {
    "returns": (
        "def f(n):\n    print('hi', n)\n    return {'n': n, 's': 'é'}\n",
        {"arguments": {"n": 3}},
    ),
    "coroutine": ("async def f():\n    return 'awaited'\n", {}),
    "raises": ("def helper():\n    raise ValueError('boom')\n\ndef f():\n    helper()\n", {}),
    "syntax error": ("def f(:\n    pass\n", {}),
    "no such function": ("def g():\n    pass\n", {}),
    "times out": ("import time\ndef f():\n    print('started')\n    time.sleep(60)\n", {"timeout_s": 0.5}),
    "exits": ("import os, sys\ndef f():\n    print('bye', file=sys.stderr)\n    os._exit(3)\n", {}),
    "huge value": ("def f():\n    return 'x' * 200_000\n", {"return_char_limit": 1000}),
    "huge stdout": ("def f():\n    print('y' * 3_000_000)\n    return 'done'\n", {}),
}


@pytest.mark.parametrize("case", PARITY)
async def test_every_outcome_reads_as_it_does_locally(runner: ToolRunner, case: str) -> None:
    """Success, exceptions with the tool's frames, timeouts, crashes and both caps: the same words either way."""
    source, fields = PARITY[case]
    tool = call(source, **fields)
    remote = await runner.executor().run(tool)
    local = await run_tool(
        source, "f", dict(tool.arguments), timeout_s=tool.timeout_s, return_char_limit=tool.return_char_limit
    )
    assert (remote.status, remote.value, remote.stdout, remote.stderr) == (
        local.status,
        local.value,
        local.stdout,
        local.stderr,
    )
    assert runner.tenants == ["acme"]


async def test_outcomes_have_the_local_shapes(runner: ToolRunner) -> None:
    """What the parity test compares is what the model must read (not two equal wrong answers)."""
    executor = runner.executor()
    ok = await executor.run(call(PARITY["returns"][0], arguments={"n": 3}))
    assert (ok.status, json.loads(ok.value), ok.stdout) == ("success", {"n": 3, "s": "é"}, ["hi 3"])
    raised = await executor.run(call(PARITY["raises"][0]))
    assert raised.status == "error"
    assert raised.value.startswith("ValueError: boom\nTraceback (tool frames, most recent call last):")
    assert 'File "<tool>", line 2, in helper' in raised.value and "in f" in raised.value
    slow = await executor.run(call(PARITY["times out"][0], timeout_s=0.5))
    assert (slow.status, slow.value, slow.stdout) == ("error", timed_out("f", 0.5), ["started"])
    huge = await executor.run(call(PARITY["huge value"][0], return_char_limit=1000))
    assert huge.value == "x" * 1000 + cut_marker(199_000, 1000)
    loud = await executor.run(call(PARITY["huge stdout"][0]))
    assert loud.value == "done"
    assert loud.stdout[-1] == stream_cut_marker(3_000_001 - OUTPUT_BYTE_LIMIT, "stdout")


async def test_the_tenant_is_the_invocations_tenant_id(runner: ToolRunner) -> None:
    executor = runner.executor()
    await executor.run(call("def f():\n    return 1\n", tenant="acme"))
    await executor.run(call("def f():\n    return 1\n", tenant="team/ä b"))  # Lambda refuses 'ä' in a TenantId
    assert runner.tenants == ["acme", lambda_tenant_id("team/ä b")]
    assert runner.tenants[1] is not None and runner.tenants[1].startswith("sha256:")
    assert all("tenant" not in json.dumps(sorted(event)) for event in runner.events)  # not in the payload


def test_every_tenant_gets_a_valid_tenant_id_of_its_own() -> None:
    import hashlib
    import re

    valid = re.compile(r"[a-zA-Z0-9._:/=+\-@ ]{1,256}")
    hashed_a = "sha256:" + hashlib.sha256("ä".encode()).hexdigest()
    tenants = ["acme", "default", "a" * 256, "a" * 257, "ä", hashed_a, "x\n", "", "sha256:", "t@example.com"]
    ids = [lambda_tenant_id(t) for t in tenants]
    assert all(valid.fullmatch(i) for i in ids), ids
    assert len(set(ids)) == len(tenants)  # a tenant named like another's hash still gets an id of its own
    assert ids[:3] == ["acme", "default", "a" * 256] and ids[-1] == "t@example.com"


async def test_the_tool_sees_no_credentials_nor_server_settings(
    runner: ToolRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The function's own variables (its role's credentials, its configuration) never reach the tool."""
    monkeypatch.setenv("CHORUS_API_KEYS", "secret-key=acme")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", FUNCTION)
    source = "import os\ndef f():\n    return sorted(os.environ)\n"
    result = await runner.executor().run(call(source, env={"GREETING": "hello"}))
    names = json.loads(result.value)
    assert result.status == "success"
    assert not [n for n in names if n.startswith(("AWS_", "CHORUS_"))], names
    assert set(names) <= {*INHERITED_ENV, "GREETING"} and "GREETING" in names


async def test_a_crashed_or_timed_out_function_is_an_error_result(runner: ToolRunner) -> None:
    executor = runner.executor()

    def crash(event: Any, headers: dict[str, str]) -> bytes:
        raise Crash("RequestId: 1 Error: Runtime exited with error: signal: killed")

    runner.fault = crash
    crashed = await executor.run(call("def f():\n    return 1\n"))
    assert crashed.status == "error"
    assert crashed.value.startswith("Tool f did not return a result: the tool runner failed (Runtime.ExitError: ")
    assert "signal: killed" in crashed.value

    def lambda_timeout(event: Any, headers: dict[str, str]) -> bytes:
        headers["x-amz-function-error"] = "Unhandled"
        message = "RequestId: 1 Error: Task timed out after 60.00 seconds"
        return json.dumps({"errorType": "Sandbox.Timedout", "errorMessage": message}).encode()

    runner.fault = lambda_timeout
    late = await executor.run(call("def f():\n    return 1\n", timeout_s=7))
    assert (late.status, late.value) == ("error", timed_out("f", 7))


async def test_what_comes_back_is_validated_and_capped(runner: ToolRunner) -> None:
    """The function runs hostile code: an answer that is not a result, or is over the caps, is not trusted."""
    executor = runner.executor()
    runner.fault = lambda event, headers: b'{"status": "fine", "value": 1}'
    malformed = await executor.run(call("def f():\n    return 1\n"))
    assert (malformed.status, malformed.value) == ("error", "Tool f sent a malformed result")

    lines = ["z" * 1000] * 3000  # ~3 MB of stdout, three times the cap

    def oversized(event: Any, headers: dict[str, str]) -> bytes:
        answer = {"status": "success", "value": "v" * 100_000, "stdout": lines, "stderr": [], "duration_s": 0.1}
        return json.dumps(answer).encode()

    runner.fault = oversized
    capped = await executor.run(call("def f():\n    return 1\n", return_char_limit=1000))
    assert capped.value == "v" * 1000 + cut_marker(99_000, 1000)
    kept = capped.stdout[:-1]
    assert kept == lines[: len(kept)] and sum(len(line) + 1 for line in kept) <= OUTPUT_BYTE_LIMIT
    assert capped.stdout[-1] == stream_cut_marker(3000 * 1001 - len(kept) * 1001, "stdout")


async def test_escape_heavy_output_is_cut_to_fit_the_lambda_response(runner: ToolRunner) -> None:
    """A control character takes 6 bytes of JSON: a tool printing and returning a million of them would
    overflow Lambda's 6 MB response (moto refuses it too) without the handler's fitting."""
    source = "def f():\n    print('\\x01' * 1_000_000)\n    return '\\x02' * 1_000_000\n"
    result = await runner.executor().run(call(source, return_char_limit=1_000_000))
    assert result.status == "success"
    assert result.value.startswith("\x02" * 1000)
    assert result.value.endswith(f"the tool runner's response is limited to {RESPONSE_BYTE_LIMIT} bytes]")
    assert result.stdout[-1].startswith("[... 1 more lines of stdout cut")


def test_fitting_keeps_a_response_within_the_limit_and_leaves_small_ones_alone() -> None:
    from chorus.tools.runner_wire import ToolRunResponse

    small = ToolRunResponse(status="success", value="ok", stdout=["a"], stderr=[], duration_s=0.1)
    assert fit_response(small) is small
    big = ToolRunResponse(
        status="error", value="\x03" * 50_000, stdout=["\x04" * 100] * 500, stderr=["e"] * 10, duration_s=1
    )
    fitted = fit_response(big, limit=100_000)
    assert len(json.dumps(fitted.model_dump())) <= 100_000
    assert fitted.stderr == ["e"] * 10 and fitted.status == "error"
    assert fitted.value.endswith("limited to 100000 bytes]") and fitted.stdout[-1].endswith("limited to 100000 bytes]")


@pytest.mark.parametrize(
    ("event", "why"),
    [
        ([], "must be a JSON object, not list"),
        ("{not json", "must be a JSON object, not str"),
        (None, "must be a JSON object, not NoneType"),
        (
            {"source": "def f(): pass", "name": "f", "arguments": {}, "timeout_s": 1},
            "return_char_limit: Field required",
        ),
        ({"name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": 1}, "source: Field required"),
        ({"source": "x", "name": "os.system", "arguments": {}, "timeout_s": 1, "return_char_limit": 1}, "name:"),
        ({"source": "x", "name": "f", "arguments": [], "timeout_s": 1, "return_char_limit": 1}, "arguments:"),
        ({"source": "x", "name": "f", "arguments": {}, "timeout_s": "1", "return_char_limit": 1}, "timeout_s:"),
        ({"source": "x", "name": "f", "arguments": {}, "timeout_s": 0, "return_char_limit": 1}, "timeout_s:"),
        ({"source": "x", "name": "f", "arguments": {}, "timeout_s": 901, "return_char_limit": 1}, "timeout_s:"),
        ({"source": "x", "name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": -1}, "return_char_limit:"),
        ({"source": "", "name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": 1}, "source:"),
        ({"source": "x" * 200_001, "name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": 1}, "source:"),
        (
            {"source": "x", "name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": 1, "tenant_id": "b"},
            "tenant_id: Extra inputs are not permitted",
        ),
        (
            {"source": "x", "name": "f", "arguments": {}, "timeout_s": 1, "return_char_limit": 1, "env": {"A=B": "1"}},
            "env.A=B.[key]:",
        ),
        (
            {"source": "x", "name": "f", "arguments": {"a": "b" * REQUEST_BYTE_LIMIT}, "timeout_s": 1},
            f"more than {REQUEST_BYTE_LIMIT}",
        ),
    ],
)
def test_the_handler_refuses_what_is_not_a_bounded_tool_request(event: Any, why: str) -> None:
    with pytest.raises(ToolRequestRefused) as refused:
        handler(event, None)
    assert why in str(refused.value)
    assert "bbbbbbbb" not in str(refused.value) and "os.system" not in str(refused.value)  # never echoes input


async def test_a_refused_request_is_a_function_error_the_executor_reports(runner: ToolRunner) -> None:
    answer = await asyncio.to_thread(runner.client.invoke, FunctionName=FUNCTION, Payload=b'"text"', TenantId="acme")
    assert answer["FunctionError"] == "Unhandled"
    assert json.loads(answer["Payload"].read())["errorType"] == "ToolRequestRefused"
    runner.fault = lambda event, headers: handler(event | {"name": "not-a-name"}, None)
    result = await runner.executor().run(call("def f():\n    return 1\n"))
    assert result.status == "error"
    assert result.value.startswith("Tool f did not return a result: the tool runner failed (ToolRequestRefused: ")


async def test_calls_the_function_would_refuse_are_not_sent(runner: ToolRunner) -> None:
    executor = runner.executor()
    too_long = await executor.run(call("#" * 200_001))
    too_big = await executor.run(call("def f(a):\n    return 1\n", arguments={"a": "b" * REQUEST_BYTE_LIMIT}))
    assert too_long.status == too_big.status == "error"
    assert too_long.value.startswith("Tool f could not be run: the tool runner cannot take this call (source:")
    assert too_big.value.startswith("Tool f could not be run: its request is ")
    not_json = await executor.run(call("def f(a):\n    return 1\n", arguments={"a": object()}))
    assert (
        not_json.value == "Tool f could not be run: its arguments cannot be sent as JSON (PydanticSerializationError)"
    )
    assert runner.events == []


def test_the_handler_ends_the_tool_before_the_invocation_would_be_killed() -> None:
    """A function timeout set below the tool's: the handler still answers, with the local timeout message."""
    request = ToolRunRequest.of(call("import time\ndef f():\n    time.sleep(60)\n", timeout_s=30))
    answer = handler(request.model_dump(), FakeContext(time.monotonic() + 3.5))
    assert answer["status"] == "error"
    assert answer["value"].startswith("Tool f timed out after 0.")


def test_the_sample_event_runs() -> None:
    """`events/toolrunner.json` is what `sam local invoke ToolRunnerFunction -e events/toolrunner.json` sends."""
    event = json.loads((ROOT / "events" / "toolrunner.json").read_text())
    answer = handler(event, FakeContext(time.monotonic() + FUNCTION_TIMEOUT_S))
    assert {k: answer[k] for k in ("status", "value", "stdout", "stderr")} == {
        "status": "success",
        "value": "5",
        "stdout": ["adding 2 and 3"],
        "stderr": [],
    }


class StubLambda:
    """A Lambda client whose `invoke` raises the given error, or waits for `release`."""

    def __init__(self, error: Exception | None = None) -> None:
        self.error = error
        self.release = threading.Event()
        self.entered = threading.Semaphore(0)
        self.threads: list[int] = []

    def invoke(self, **params: Any) -> dict[str, Any]:
        self.threads.append(threading.get_ident())
        self.entered.release()
        if self.error is not None:
            raise self.error
        assert self.release.wait(30)
        raise EndpointConnectionError(endpoint_url="https://lambda")


@pytest.mark.parametrize(
    ("error", "said"),
    [
        (
            ClientError({"Error": {"Code": "TooManyRequestsException", "Message": "Rate exceeded"}}, "Invoke"),
            "the tool runner is unavailable (TooManyRequestsException: Rate exceeded)",
        ),
        (
            ClientError({"Error": {"Code": "ResourceNotFoundException", "Message": "no such function"}}, "Invoke"),
            "the tool runner is unavailable (ResourceNotFoundException: no such function)",
        ),
        (EndpointConnectionError(endpoint_url="https://lambda"), "unavailable (EndpointConnectionError: "),
    ],
)
async def test_service_failures_are_error_results(error: Exception, said: str) -> None:
    result = await LambdaToolExecutor("fn", StubLambda(error)).run(call("def f():\n    return 1\n"))
    assert result.status == "error"
    assert result.value.startswith("Tool f could not be run: ") and said in result.value


async def test_cancelling_returns_while_the_invocation_still_runs() -> None:
    stub = StubLambda()
    task = asyncio.ensure_future(LambdaToolExecutor("fn", stub).run(call("def f():\n    return 1\n")))
    assert await asyncio.to_thread(stub.entered.acquire, True, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 30)
    assert not stub.release.is_set()  # the invoke is still blocked: cancelling did not wait for it
    stub.release.set()


async def test_an_invocation_that_outlives_timeout_and_grace_is_a_timeout() -> None:
    stub = StubLambda()
    executor = LambdaToolExecutor("fn", stub, grace_s=0.05)
    try:
        result = await executor.run(call("def f():\n    return 1\n", timeout_s=0.05))
    finally:
        stub.release.set()
    assert (result.status, result.value) == ("error", timed_out("f", 0.05))


async def test_invocations_run_off_the_loop_on_threads_of_their_own() -> None:
    """Many slow tools neither block the loop nor starve the default executor the DynamoDB store uses."""
    stub = StubLambda()
    executor = LambdaToolExecutor("fn", stub)
    slow = [asyncio.ensure_future(executor.run(call("def f():\n    return 1\n"))) for _ in range(40)]
    try:
        for _ in slow:
            assert await asyncio.to_thread(stub.entered.acquire, True, 30)
        assert await asyncio.wait_for(asyncio.to_thread(lambda: "store call"), 30) == "store call"
    finally:
        stub.release.set()
    results = await asyncio.gather(*slow)
    assert {r.status for r in results} == {"error"}
    assert len(stub.threads) == 40 and threading.get_ident() not in stub.threads


def test_the_executor_is_built_from_settings_and_fits_the_port() -> None:
    executor = LambdaToolExecutor.from_settings(Settings(tool_runner_function="arn:aws:lambda:x:1:function:tr"))
    assert executor.function_name == "arn:aws:lambda:x:1:function:tr"
    port: ToolExecutor = executor
    assert (port.name, port.isolates_tenants) == ("lambda", True)
    with pytest.raises(ValueError, match="CHORUS_TOOL_RUNNER_FUNCTION"):
        LambdaToolExecutor.from_settings(Settings())
