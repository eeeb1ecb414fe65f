"""The `lambda` tool executor: each call runs in the ToolRunner function, in an execution environment of its tenant.

The ToolRunner function has tenant isolation mode (`PER_TENANT`): every invoke
carries the run's tenant as `TenantId` and Lambda never lets two tenants
share an execution environment, so a tool can reach nothing another tenant's
tool left behind (files in `/tmp`, processes, memory). Its role grants only
its own logs, so a tool that reads the function's credentials gains nothing.

The function runs the call with `chorus.tools.sandbox.run_tool`, so timeouts,
output caps and error shapes are the local runner's; the ways only Lambda
can fail (the function timing out or crashing, throttling, a missing
function) become `status="error"` results with a message saying so. What
comes back is not trusted: its shape is validated and the caps re-applied.

Invocations block a thread for as long as the tool runs, so they get a pool
of their own: on the event loop's default executor (a handful of threads,
shared with the DynamoDB store) a few slow tools would stall every store call.
Cancelling the awaiting task returns at once; the invocation itself is bounded
by the tool's timeout and the function's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from chorus.tools.execution import ToolCall, ToolResult
from chorus.tools.runner_wire import (
    MAX_TIMEOUT_S,
    REQUEST_BYTE_LIMIT,
    ToolRunRequest,
    ToolRunResponse,
    lambda_tenant_id,
)
from chorus.tools.sandbox import OUTPUT_BYTE_LIMIT, stream_cut_marker, timed_out, value_cut_marker

if TYPE_CHECKING:
    from chorus.settings import Settings

__all__ = ["LambdaToolExecutor"]

logger = logging.getLogger(__name__)

RESPONSE_READ_LIMIT = 7 << 20
"""Bytes read of a response at most (Lambda sends no more than 6 MiB)."""
_MARKER_ROOM = 256
"""Characters a truncation marker may add to a capped value or stream."""
_MESSAGE_CHARS = 1_000
"""Characters kept of an error message from Lambda."""


class LambdaToolExecutor:
    """Runs custom tools in the ToolRunner Lambda function, one tenant per execution environment."""

    name = "lambda"
    isolates_tenants = True

    def __init__(
        self,
        function_name: str,
        client: Any | None = None,
        *,
        grace_s: float = 30.0,
        max_concurrent: int = 64,
    ) -> None:
        """
        Args:
            function_name: The ToolRunner function's name or ARN.
            client: A boto3 Lambda client; by default one is made on first use.
            grace_s: Time allowed beyond the tool's timeout for the invocation (a cold start, the reply).
            max_concurrent: Invocations in flight at once; more wait for a thread.
        """
        if not function_name:
            raise ValueError("the ToolRunner function name is empty")
        self.function_name = function_name
        self.grace_s = grace_s
        self.max_concurrent = max_concurrent
        self._client = client
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings, client: Any | None = None) -> LambdaToolExecutor:
        """The executor of `CHORUS_TOOL_RUNNER_FUNCTION`."""
        if not settings.tool_runner_function:
            raise ValueError("CHORUS_TOOL_RUNNER_FUNCTION must name the ToolRunner function to run tools on Lambda")
        return cls(settings.tool_runner_function, client)

    async def run(self, call: ToolCall) -> ToolResult:
        started = time.monotonic()
        try:
            payload = ToolRunRequest.of(call).payload()
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors(include_input=False)[:5]
            )
            return _failed(call, f"the tool runner cannot take this call ({problems})", started)
        except (TypeError, ValueError) as exc:  # arguments that are not JSON
            return _failed(call, f"its arguments cannot be sent as JSON ({type(exc).__name__})", started)
        if len(payload) > REQUEST_BYTE_LIMIT:
            return _failed(
                call,
                f"its request is {len(payload)} bytes, more than the tool runner takes ({REQUEST_BYTE_LIMIT})",
                started,
            )
        loop = asyncio.get_running_loop()
        invocation = loop.run_in_executor(self._threads(), self._invoke, lambda_tenant_id(call.tenant_id), payload)
        try:
            async with asyncio.timeout(call.timeout_s + self.grace_s):
                function_error, body = await invocation
        except TimeoutError:
            return ToolResult(timed_out(call.name, call.timeout_s), "error", duration_s=time.monotonic() - started)
        except Exception as exc:  # botocore's ClientError and BotoCoreError: the service, not the tool
            code, message = _describe(exc)
            logger.warning("tool runner invoke failed: %s", code, extra={"function": self.function_name})
            return _failed(call, f"the tool runner is unavailable ({code}: {message})", started)
        duration = time.monotonic() - started
        if function_error is not None:
            return ToolResult(_function_error(call, body), "error", duration_s=duration)
        try:
            answer = ToolRunResponse.model_validate_json(body)
        except ValidationError:
            return ToolResult(f"Tool {call.name} sent a malformed result", "error", duration_s=duration)
        result = _capped(answer.result(), call.return_char_limit)
        return ToolResult(result.value, result.status, result.stdout, result.stderr, duration)

    def _threads(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(self.max_concurrent, thread_name_prefix="chorus-tool-invoke")
            return self._pool

    def _lambda(self) -> Any:
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(
                    connect_timeout=10,
                    read_timeout=MAX_TIMEOUT_S + 60,  # the function's own timeout ends a call first
                    retries={"mode": "standard", "max_attempts": 3},
                )
                self._client = boto3.session.Session().client("lambda", config=config)
            return self._client

    def _invoke(self, tenant_id: str, payload: bytes) -> tuple[str | None, bytes]:
        response = self._lambda().invoke(
            FunctionName=self.function_name,
            InvocationType="RequestResponse",
            TenantId=tenant_id,
            Payload=payload,
        )
        body: bytes = response["Payload"].read(RESPONSE_READ_LIMIT)
        return response.get("FunctionError"), body


def _failed(call: ToolCall, why: str, started: float) -> ToolResult:
    return ToolResult(f"Tool {call.name} could not be run: {why}", "error", duration_s=time.monotonic() - started)


def _describe(exc: Exception) -> tuple[str, str]:
    """The error code and message of a boto3 failure."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        error = response.get("Error", {})
        return str(error.get("Code", type(exc).__name__)), str(error.get("Message", ""))[:_MESSAGE_CHARS]
    return type(exc).__name__, str(exc)[:_MESSAGE_CHARS]


def _function_error(call: ToolCall, body: bytes) -> str:
    """What a failed invocation means for the tool: a timeout as the local runner words it, else what Lambda said."""
    try:
        error = json.loads(body)
    except ValueError:
        error = None
    if not isinstance(error, dict):
        error = {}
    kind = str(error.get("errorType") or "Unhandled")
    message = str(error.get("errorMessage") or "")[:_MESSAGE_CHARS]
    if kind == "Sandbox.Timedout" or "Task timed out" in message:
        return timed_out(call.name, call.timeout_s)
    return f"Tool {call.name} did not return a result: the tool runner failed ({kind}: {message})"


def _capped(result: ToolResult, return_char_limit: int) -> ToolResult:
    """`result` within the caps the local runner applies, whatever the function sent."""
    value = result.value
    if len(value) > return_char_limit + _MARKER_ROOM:
        value = value[:return_char_limit] + value_cut_marker(len(value) - return_char_limit, return_char_limit)
    return ToolResult(
        value,
        result.status,
        _capped_stream(result.stdout, "stdout"),
        _capped_stream(result.stderr, "stderr"),
        result.duration_s,
    )


def _capped_stream(lines: list[str], stream: str) -> list[str]:
    """At most `OUTPUT_BYTE_LIMIT` bytes of lines (each with its newline), as the local runner keeps."""
    sizes = [len(line.encode("utf-8", "replace")) + 1 for line in lines]
    if sum(sizes) <= OUTPUT_BYTE_LIMIT + _MARKER_ROOM:
        return lines
    kept: list[str] = []
    used = 0
    for line, size in zip(lines, sizes, strict=True):
        if used + size > OUTPUT_BYTE_LIMIT:
            break
        kept.append(line)
        used += size
    kept.append(stream_cut_marker(sum(sizes) - used, stream))
    return kept
