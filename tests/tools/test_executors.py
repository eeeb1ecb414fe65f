"""Choosing the tool executor: what `auto` takes, what an explicit choice refuses, what the API says."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from chorus.runs import service
from chorus.settings import Settings
from chorus.tenancy import multi_tenant
from chorus.tools import bubblewrap, executors
from chorus.tools.bubblewrap import BubblewrapExecutor
from chorus.tools.execution import ToolCall, ToolResult
from chorus.tools.executors import (
    RefusingExecutor,
    SubprocessExecutor,
    ToolExecutorConfigError,
    tool_executor_for,
)
from chorus.tools.lambda_executor import LambdaToolExecutor
from support import create_group, payloads, stream

MISSING = "bubblewrap is not installed ('bwrap' not found on PATH; Debian package 'bubblewrap')"
TOOL = "def double(x: int) -> int:\n    '''Twice x.\n\n    Args:\n        x: a number\n    '''\n    return 2 * x\n"


@pytest.fixture
def no_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "bubblewrap_problem", lambda: MISSING)


@pytest.fixture
def working_bubblewrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(executors, "bubblewrap_problem", lambda: None)


@pytest.mark.parametrize(
    ("keys", "parameter", "expected"),
    [
        (None, None, False),
        ("ka=alice", None, False),
        ("ka=alice,kb=alice", None, False),
        ("ka,kb", None, False),
        ("ka=alice,kb=bob", None, True),
        (None, "/chorus/api-keys", True),
    ],
)
def test_multi_tenant(keys: str | None, parameter: str | None, expected: bool) -> None:
    assert multi_tenant(Settings(api_keys=keys, api_keys_parameter=parameter)) is expected


@pytest.mark.usefixtures("working_bubblewrap")
def test_auto_takes_the_sandbox_where_bubblewrap_works() -> None:
    chosen = tool_executor_for(Settings(api_keys="ka=alice,kb=bob"))
    assert isinstance(chosen, BubblewrapExecutor) and chosen.isolates_tenants


@pytest.mark.usefixtures("working_bubblewrap")
def test_the_sandbox_gets_the_configured_limits() -> None:
    settings = Settings(
        tool_memory_mb=300,
        tool_cpu_s=7,
        tool_max_processes=9,
        tool_max_file_mb=3,
        tool_max_open_files=40,
        tool_tmp_mb=5,
        tool_network=True,
    )
    chosen = tool_executor_for(settings)
    assert isinstance(chosen, BubblewrapExecutor)
    assert chosen.limits.rlimits() == {
        "RLIMIT_AS": 300 << 20,
        "RLIMIT_CPU": 7,
        "RLIMIT_NPROC": 9,
        "RLIMIT_FSIZE": 3 << 20,
        "RLIMIT_NOFILE": 40,
        "RLIMIT_CORE": 0,
    }
    assert "--unshare-net" not in chosen.prefix and str(5 << 20) in chosen.prefix
    default = tool_executor_for(Settings())
    assert isinstance(default, BubblewrapExecutor) and "--unshare-net" in default.prefix


@pytest.mark.usefixtures("no_bubblewrap")
def test_auto_falls_back_to_a_child_process_for_one_tenant_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="chorus.tools.executors"):
        chosen = tool_executor_for(Settings(api_keys="ka=alice"))
    assert isinstance(chosen, SubprocessExecutor)
    assert "no isolation from the server" in caplog.text and MISSING in caplog.text


@pytest.mark.usefixtures("no_bubblewrap")
async def test_auto_with_several_tenants_and_no_sandbox_refuses_tools() -> None:
    chosen = tool_executor_for(Settings(api_keys="ka=alice,kb=bob"))
    assert isinstance(chosen, RefusingExecutor)
    result = await chosen.run(ToolCall("bob", TOOL, "double", {"x": 2}))
    assert result.status == "error"
    assert result.value.startswith("Tool double cannot run: no isolating tool executor is available")
    assert "bubblewrap" in result.value


def test_explicit_subprocess_with_several_tenants_refuses_to_start() -> None:
    with pytest.raises(ToolExecutorConfigError, match="allowed only with a single tenant"):
        tool_executor_for(Settings(tool_executor="subprocess", api_keys="ka=alice,kb=bob"))
    with pytest.raises(ToolExecutorConfigError, match="single tenant"):
        tool_executor_for(Settings(tool_executor="subprocess", api_keys_parameter="/chorus/keys"))
    assert isinstance(tool_executor_for(Settings(tool_executor="subprocess")), SubprocessExecutor)


@pytest.mark.usefixtures("no_bubblewrap")
def test_explicit_sandbox_without_bubblewrap_refuses_to_start() -> None:
    with pytest.raises(ToolExecutorConfigError, match="Debian package 'bubblewrap'"):
        tool_executor_for(Settings(tool_executor="sandbox"))


def test_lambda_without_a_tool_runner_function_refuses_to_start() -> None:
    with pytest.raises(ToolExecutorConfigError, match="CHORUS_TOOL_RUNNER_FUNCTION"):
        tool_executor_for(Settings(tool_executor="lambda"))


@pytest.mark.usefixtures("working_bubblewrap")
@pytest.mark.parametrize("choice", ["lambda", "auto"])
def test_a_tool_runner_function_runs_tools_on_lambda(choice: str) -> None:
    """As the template configures the API and Step functions: `auto` (or `lambda`) and the function's name."""
    chosen = tool_executor_for(
        Settings(tool_executor=choice, tool_runner_function="chorus-ToolRunner", api_keys_parameter="/k")
    )
    assert isinstance(chosen, LambdaToolExecutor) and chosen.isolates_tenants
    assert chosen.function_name == "chorus-ToolRunner"


def test_a_missing_bwrap_is_named() -> None:
    assert bubblewrap.bubblewrap_problem("no-such-bwrap-here") == (
        "bubblewrap is not installed ('no-such-bwrap-here' not found on PATH; Debian package 'bubblewrap')"
    )


def test_a_bwrap_that_cannot_make_namespaces_is_named(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    problem = bubblewrap.bubblewrap_problem(str(fake))
    assert problem is not None and "No permissions to create new namespace" in problem


@pytest.mark.usefixtures("no_bubblewrap")
async def test_the_app_refuses_tool_sources_when_no_executor_isolates_tenants(
    make_app: Callable[..., FastAPI],
) -> None:
    app = make_app(settings={"api_keys": "ka=alice,kb=bob"})
    async with app.router.lifespan_context(app):
        headers = {"Authorization": "Bearer kb"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            for method in ("POST", "PUT"):
                refused = await client.request(method, "/v1/tools", json={"source_code": TOOL})
                assert refused.status_code == 503
                assert "Custom tools cannot be created" in refused.json()["detail"]
                assert "bubblewrap" in refused.json()["detail"]
            assert (await client.get("/v1/tools")).json() == []


@pytest.mark.usefixtures("working_bubblewrap")
async def test_the_app_accepts_tool_sources_with_an_isolating_executor(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(settings={"api_keys": "ka=alice,kb=bob"})
    async with app.router.lifespan_context(app):
        headers = {"Authorization": "Bearer kb"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            assert (await client.post("/v1/tools", json={"source_code": TOOL})).status_code == 200


async def test_the_app_does_not_start_with_subprocess_and_several_tenants(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(settings={"api_keys": "ka=alice,kb=bob", "tool_executor": "subprocess"})
    with pytest.raises(ToolExecutorConfigError, match="single tenant"):
        async with app.router.lifespan_context(app):
            pass


class Recording:
    """An executor that keeps every call it was given and answers each the same."""

    name = "recording"
    isolates_tenants = True

    def __init__(self) -> None:
        self.calls: list[ToolCall] = []

    async def run(self, call: ToolCall) -> ToolResult:
        self.calls.append(call)
        return ToolResult("recorded", "success")


async def test_runs_use_the_one_executor_of_the_service_and_name_the_tenant(
    make_app: Callable[..., FastAPI], monkeypatch: pytest.MonkeyPatch
) -> None:
    built: list[Recording] = []

    def build(settings: Settings) -> Recording:
        built.append(Recording())
        return built[-1]

    monkeypatch.setattr(service, "tool_executor_for", build)
    app = make_app(settings={"api_keys": "ka=alice,kb=bob", "tool_timeout_s": 7})
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        headers = {"Authorization": "Bearer kb"}
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", headers=headers) as client:
            tool = (await client.post("/v1/tools", json={"source_code": TOOL})).json()
            calls = [{"name": "double", "arguments": {"x": 4}}]
            script = {"steps": [calls], "replies": ["ok"]}
            body = {"name": "Ada", "tool_ids": [tool["id"]], "metadata": {"scripted": script}}
            agent = (await client.post("/v1/agents", json=body)).json()
            group = await create_group(client, [agent["id"]])
            for _ in range(2):
                events = payloads(await stream(client, group["id"], {"input": "Go."}))
                ret = next(e for e in events if e["message_type"] == "tool_return_message")
                assert (ret["status"], ret["tool_return"]) == ("success", "recorded")
    assert len(built) == 1, "one executor per service, not one per run or call"
    assert [(c.tenant_id, c.name, dict(c.arguments), c.timeout_s) for c in built[0].calls] == [
        ("bob", "double", {"x": 4}, 7.0)
    ] * 2
