"""Choosing the tool executor from configuration, once per app or workflow environment.

`CHORUS_TOOL_EXECUTOR` names an adapter (`ADAPTERS`: adding one is one entry)
or `auto`. `auto` takes `lambda` when a ToolRunner function is configured
(`CHORUS_TOOL_RUNNER_FUNCTION`, as on AWS), else `sandbox` when bubblewrap
works on this machine (probed once); else, for a single tenant, today's plain `subprocess` with a
start-up warning; else no executor at all: with several tenants, a tool
that is not isolated could read every tenant's data, so creating a custom
tool is refused (503) and a run that calls one gets an error as the tool's
return, both naming what is missing. An explicit choice that cannot hold
(`subprocess` with several tenants, `sandbox` without a working bwrap) stops
the server at start-up with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from chorus.errors import ToolExecutionUnavailable
from chorus.settings import Settings
from chorus.tenancy import multi_tenant
from chorus.tools.bubblewrap import BubblewrapExecutor, SandboxLimits, bubblewrap_problem
from chorus.tools.execution import ToolCall, ToolExecutor, ToolResult
from chorus.tools.sandbox import run_tool

__all__ = [
    "ADAPTERS",
    "RefusingExecutor",
    "SubprocessExecutor",
    "ToolExecutorConfigError",
    "require_tool_execution",
    "tool_executor_for",
]

logger = logging.getLogger(__name__)


class ToolExecutorConfigError(RuntimeError):
    """The configured tool executor cannot run safely (or at all) here; the server must not start."""


class SubprocessExecutor:
    """A plain child process (`run_tool`): contains mistakes, not hostile code. Single tenant only."""

    name = "subprocess"
    isolates_tenants = False

    async def run(self, call: ToolCall) -> ToolResult:
        return await run_tool(
            call.source_code,
            call.name,
            dict(call.arguments),
            timeout_s=call.timeout_s,
            return_char_limit=call.return_char_limit,
            env=call.env,
        )


class RefusingExecutor:
    """No executor may run tools here: every call is an error result saying why (never an exception)."""

    name = "none"
    isolates_tenants = False

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def run(self, call: ToolCall) -> ToolResult:
        return ToolResult(f"Tool {call.name} cannot run: {self.reason}", "error")


def sandbox_limits(settings: Settings) -> SandboxLimits:
    return SandboxLimits(
        memory_mb=settings.tool_memory_mb,
        cpu_s=settings.tool_cpu_s,
        max_processes=settings.tool_max_processes,
        max_file_mb=settings.tool_max_file_mb,
        max_open_files=settings.tool_max_open_files,
        tmp_mb=settings.tool_tmp_mb,
        network=settings.tool_network,
    )


def _sandbox(settings: Settings) -> ToolExecutor:
    problem = bubblewrap_problem()
    if problem is not None:
        raise ToolExecutorConfigError(f"CHORUS_TOOL_EXECUTOR=sandbox, but {problem}.")
    return BubblewrapExecutor(sandbox_limits(settings))


def _subprocess(settings: Settings) -> ToolExecutor:
    if multi_tenant(settings):
        raise ToolExecutorConfigError(
            "CHORUS_TOOL_EXECUTOR=subprocess runs every tenant's tools as plain processes of the server, "
            "where one tenant's tool can read the server's keys and every tenant's data; it is allowed only "
            "with a single tenant, and the API keys name several (or come from a parameter). "
            "Use CHORUS_TOOL_EXECUTOR=sandbox (install bubblewrap) or lambda."
        )
    return SubprocessExecutor()


def _lambda(settings: Settings) -> ToolExecutor:
    if not settings.tool_runner_function:
        raise ToolExecutorConfigError(
            "CHORUS_TOOL_EXECUTOR=lambda needs CHORUS_TOOL_RUNNER_FUNCTION, the ToolRunner function to invoke."
        )
    from chorus.tools.lambda_executor import LambdaToolExecutor  # boto3, imported only where tools run on Lambda

    return LambdaToolExecutor.from_settings(settings)


ADAPTERS: dict[str, Callable[[Settings], ToolExecutor]] = {
    "sandbox": _sandbox,
    "lambda": _lambda,
    "subprocess": _subprocess,
}
"""The executors an operator can name, each built from the settings (raising when it cannot hold here)."""


def tool_executor_for(settings: Settings) -> ToolExecutor:
    """The executor `settings` ask for. Raises `ToolExecutorConfigError` for an explicit choice that cannot hold."""
    if settings.tool_executor != "auto":
        return ADAPTERS[settings.tool_executor](settings)
    if settings.tool_runner_function:
        return _lambda(settings)
    problem = bubblewrap_problem()
    if problem is None:
        return BubblewrapExecutor(sandbox_limits(settings))
    if not multi_tenant(settings):
        logger.warning(
            "Custom tools run as plain child processes (no isolation from the server): %s. "
            "Fine for a single local tenant; install bubblewrap to sandbox them.",
            problem,
        )
        return SubprocessExecutor()
    reason = (
        f"no isolating tool executor is available for several tenants: {problem}; "
        "install bubblewrap or set CHORUS_TOOL_EXECUTOR=lambda"
    )
    logger.error("Custom tools are refused: %s.", reason)
    return RefusingExecutor(reason)


def require_tool_execution(executor: ToolExecutor) -> None:
    """Refuse (503) to accept a custom tool that could never run here."""
    if isinstance(executor, RefusingExecutor):
        raise ToolExecutionUnavailable(f"Custom tools cannot be created: {executor.reason}.")
