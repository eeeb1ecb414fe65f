"""Tools run in a child interpreter: results, output, failures, limits, isolation, cleanup."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import pytest

from chorus.tools import sandbox
from chorus.tools.sandbox import ToolResult, crash_report, run_tool

TOOLS = """
import asyncio, os, subprocess, sys, time

class Opaque:
    def __repr__(self):
        return "<Opaque>"

def echo(value):
    return value

def opaque():
    return Opaque()

def chatty(n: int) -> str:
    for i in range(n):
        print(f"out {i}")
        print(f"err {i}", file=sys.stderr)
    os.system("echo from a subprocess")
    return "done"

def fails(x: int) -> int:
    return helper(x)

def helper(x):
    raise TypeError(f"bad x: {x}")

async def slow_echo(value: str) -> str:
    await asyncio.sleep(0.01)
    return value.upper()

def sleeps(seconds: float) -> str:
    time.sleep(seconds)
    return "woke"

def spawns_and_sleeps(pid_file: str) -> str:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(pid_file + ".tmp", "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    os.rename(pid_file + ".tmp", pid_file)
    time.sleep(600)
    return "unreachable"

def exits():
    print("about to exit", file=sys.stderr)
    os._exit(3)

def segfaults():
    import ctypes
    ctypes.string_at(0)

def big(n: int) -> str:
    return "x" * n

def floods(n: int) -> str:
    sys.stdout.write("y" * n)
    return "ok"

def env(variable: str):
    return os.environ.get(variable)

def leaves_a_straggler() -> int:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid

def exits_cleanly():
    sys.exit(0)
"""


async def call(name: str, **arguments: Any) -> ToolResult:
    return await run_tool(TOOLS, name, arguments)


def alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that is not us counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return True  # no procfs: the signal probe is all there is


async def gone(pid: int) -> bool:
    """SIGKILL is delivered asynchronously: give the kernel a moment before calling a process a survivor."""
    for _ in range(200):
        if not alive(pid):
            return True
        await asyncio.sleep(0.05)
    return False


def read_if_written(path: Path) -> str | None:
    return path.read_text() if path.exists() else None


async def wait_for_file(path: Path) -> str:
    for _ in range(400):
        if (text := read_if_written(path)) is not None:
            return text
        await asyncio.sleep(0.025)
    raise AssertionError(f"{path} never appeared")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain text", "plain text"),
        ("", ""),
        (42, "42"),
        (1.5, "1.5"),
        (True, "true"),
        (None, "null"),
        ([1, "a", None], '[1, "a", null]'),
        ({"k": {"nested": ["ü"]}}, '{"k": {"nested": ["ü"]}}'),
    ],
)
async def test_return_values(value: Any, expected: str) -> None:
    result = await call("echo", value=value)
    assert (result.status, result.value) == ("success", expected)


async def test_unserialisable_values_fall_back_to_repr() -> None:
    assert (await call("opaque")).value == "<Opaque>"


async def test_output_is_captured_in_order() -> None:
    result = await call("chatty", n=3)
    assert result.value == "done"
    assert result.stdout == ["out 0", "out 1", "out 2", "from a subprocess"]
    assert result.stderr == ["err 0", "err 1", "err 2"]
    assert result.duration_s > 0


async def test_exceptions_are_error_results() -> None:
    result = await call("fails", x=7)
    assert result.status == "error"
    head, *tail = result.value.splitlines()
    assert head == "TypeError: bad x: 7"
    assert 'File "<tool>", line 22, in fails' in result.value
    assert 'File "<tool>", line 25, in helper' in result.value
    assert tail[-1].strip() == 'raise TypeError(f"bad x: {x}")'
    assert "runner" not in result.value.lower()  # only the tool's own frames


@pytest.mark.parametrize(
    ("name", "arguments", "message"),
    [
        ("fails", {}, "TypeError: fails() missing 1 required positional argument: 'x'"),
        ("fails", {"x": 1, "y": 2}, "TypeError: fails() got an unexpected keyword argument 'y'"),
        ("missing", {}, "NameError: tool source defines no function 'missing'"),
        ("Opaque", {"x": 1}, "TypeError: Opaque() takes no arguments"),
        ("exits_cleanly", {}, "SystemExit: 0"),
    ],
)
async def test_bad_calls_are_error_results(name: str, arguments: dict[str, Any], message: str) -> None:
    result = await run_tool(TOOLS, name, arguments)
    assert result.status == "error"
    assert result.value.splitlines()[0] == message


async def test_source_that_fails_to_load() -> None:
    result = await run_tool("import not_a_module_anywhere\ndef t(): pass\n", "t", {})
    assert result.status == "error"
    assert result.value.startswith("ModuleNotFoundError: No module named 'not_a_module_anywhere'")
    syntax = await run_tool("x = 1\ndef t(:\n", "t", {})
    assert (syntax.status, syntax.value) == ("error", "SyntaxError: invalid syntax (line 2)")


async def test_tools_may_define_classes_and_dataclasses() -> None:
    source = (
        "from dataclasses import dataclass, asdict\n"
        "@dataclass\nclass Point:\n    x: int\n    y: int\n"
        "def t(x: int) -> dict:\n    return asdict(Point(x, 2 * x))\n"
    )
    assert (await run_tool(source, "t", {"x": 2})).value == '{"x": 2, "y": 4}'


@pytest.mark.parametrize(("timeout_s", "limit"), [(0, 10), (-1, 10), (1, -1)])
async def test_limits_are_checked(timeout_s: float, limit: int) -> None:
    with pytest.raises(ValueError, match="timeout_s must be positive"):
        await run_tool("def t(): pass\n", "t", {}, timeout_s=timeout_s, return_char_limit=limit)


async def test_async_tools_are_awaited() -> None:
    result = await call("slow_echo", value="quiet")
    assert (result.status, result.value) == ("success", "QUIET")


async def test_timeout() -> None:
    result = await run_tool(TOOLS, "sleeps", {"seconds": 600}, timeout_s=0.5)
    assert result == ToolResult("Tool sleeps timed out after 0.5 s", "error", [], [], result.duration_s)


async def test_timeout_kills_everything_the_tool_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    result = await run_tool(TOOLS, "spawns_and_sleeps", {"pid_file": str(pid_file)}, timeout_s=2.0)
    assert (result.status, result.value) == ("error", "Tool spawns_and_sleeps timed out after 2.0 s")
    tool_pid, child_pid = map(int, pid_file.read_text().split())
    assert await gone(tool_pid)
    assert await gone(child_pid)


async def test_processes_left_behind_by_a_finished_tool_are_killed() -> None:
    result = await call("leaves_a_straggler")  # the straggler holds stdout open: it must not hold the call up
    assert result.status == "success"
    assert await gone(int(result.value))


async def test_crash_names_the_exit_code_and_keeps_stderr() -> None:
    result = await call("exits")
    assert result.status == "error"
    assert result.value == "Tool exits exited with code 3 without returning a result; its stderr ends:\nabout to exit"
    assert result.stderr == ["about to exit"]


async def test_segfault_names_the_signal() -> None:
    result = await call("segfaults")
    assert result.status == "error"
    assert result.value.startswith("Tool segfaults was killed by SIGSEGV (exit code -11) without returning a result")


def test_a_signal_reported_by_the_sandboxs_parent_is_named_as_one() -> None:
    """bubblewrap exits 128 + the signal that killed the tool under it (SIGKILL at the CPU limit's hard
    end is 137): the same death as a negative code, named the same way."""
    assert crash_report("burn", 137, []) == "Tool burn was killed by SIGKILL (exit code 137) without returning a result"
    assert crash_report("burn", -9, []) == "Tool burn was killed by SIGKILL (exit code -9) without returning a result"
    assert crash_report("exits", 3, []) == "Tool exits exited with code 3 without returning a result"
    no_such_signal = crash_report("exits", 250, [])
    assert no_such_signal == "Tool exits exited with code 250 without returning a result"


async def test_huge_return_values_are_truncated_with_a_marker() -> None:
    result = await run_tool(TOOLS, "big", {"n": 120_000}, return_char_limit=1_000)
    assert result.status == "success"
    assert (
        result.value == "x" * 1_000 + "\n[... 119000 more characters cut: the result exceeded return_char_limit=1000]"
    )
    assert (await run_tool(TOOLS, "big", {"n": 1_000}, return_char_limit=1_000)).value == "x" * 1_000


async def test_output_is_capped_with_a_marker(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox, "OUTPUT_BYTE_LIMIT", 10_000)
    result = await call("floods", n=1_000_000)
    assert result.value == "ok"
    assert result.stdout == ["y" * 10_000, "[... 990000 more bytes of stdout cut: the limit is 10000 bytes]"]


async def test_the_server_environment_is_not_inherited(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_TEST_SECRET", "hunter2")
    assert (await call("env", variable="CHORUS_TEST_SECRET")).value == "null"
    given = await run_tool(TOOLS, "env", {"variable": "TOOL_TOKEN"}, env={"TOOL_TOKEN": "for-the-tool"})
    assert given.value == "for-the-tool"
    assert (await call("env", variable="PATH")).value == os.environ["PATH"]


async def test_concurrent_calls_are_independent() -> None:
    results = await asyncio.gather(*(call("slow_echo", value=f"call {i}") for i in range(20)))
    assert [r.value for r in results] == [f"CALL {i}" for i in range(20)]
    assert {r.status for r in results} == {"success"}


async def test_cancelling_the_caller_kills_the_tool(tmp_path: Path) -> None:
    pid_file = tmp_path / "pids"
    task = asyncio.create_task(run_tool(TOOLS, "spawns_and_sleeps", {"pid_file": str(pid_file)}))
    tool_pid, child_pid = map(int, (await wait_for_file(pid_file)).split())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await gone(tool_pid)
    assert await gone(child_pid)
