"""The `sandbox` executor: each attack a tool can make on the server or another call, and the limits.

Every attack also runs under the plain `subprocess` executor, where it must
succeed: that is what shows the attack is real and the assertion can fail.
Where bwrap is missing or cannot make namespaces, every test here is skipped
with the reason.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chorus.tools.bubblewrap import SANDBOX_UID_BASE, BubblewrapExecutor, SandboxLimits, bubblewrap_problem
from chorus.tools.execution import ToolCall, ToolExecutor, ToolResult
from chorus.tools.executors import SubprocessExecutor
from support.host_processes import all_gone, process_marker, running

PROBLEM = bubblewrap_problem()
pytestmark = pytest.mark.skipif(PROBLEM is not None, reason=f"the sandbox cannot run here: {PROBLEM}")

ATTACKS = r"""
import json, os, signal, socket, subprocess, sys, time

def read(path):
    try:
        with open(path, "rb") as f:
            return f.read(4096).decode("latin-1")
    except OSError as exc:
        return f"refused: {type(exc).__name__}"

def read_mem(pid):
    try:
        with open(f"/proc/{pid}/maps") as maps:
            start = int(maps.readline().split("-")[0], 16)
        with open(f"/proc/{pid}/mem", "rb") as mem:
            mem.seek(start)
            return f"read {len(mem.read(64))} bytes"
    except (OSError, ValueError) as exc:
        return f"refused: {type(exc).__name__}"

def write(path):
    try:
        with open(path, "w") as f:
            f.write("planted")
        return "written"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"

def connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        return "connected"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"

def signal_process(pid):
    try:
        os.kill(pid, 0)
        return "may signal"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"

def environment():
    return dict(os.environ)

def processes():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())

def escape(marker):
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", marker])
        os._exit(0)
    time.sleep(0.2)
    return "spawned"

def spawn_and_sleep(marker):
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True)
    time.sleep(600)

def allocate(mib):
    try:
        block = bytearray(mib << 20)
        return f"allocated {len(block) >> 20} MiB"
    except MemoryError:
        return "refused: MemoryError"

def write_big(mib):
    try:
        with open("big", "wb") as f:
            for _ in range(mib):
                f.write(b"x" * (1 << 20))
        return "written"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"

def open_many(n):
    held = []
    try:
        for _ in range(n):
            held.append(open("/dev/null"))
        return f"opened {len(held)}"
    except OSError as exc:
        return f"refused after {len(held)}: {type(exc).__name__}"

def fork_bomb(n):
    children = []
    try:
        for _ in range(n):
            pid = os.fork()
            if pid == 0:
                time.sleep(600)
                os._exit(0)
            children.append(pid)
        return f"forked {len(children)}"
    except OSError as exc:
        return f"refused after {len(children)}: {type(exc).__name__}"
    finally:
        for pid in children:
            os.kill(pid, signal.SIGKILL)

def burn():
    while True:
        pass

def identity():
    status = dict(line.split(":\t", 1) for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
    return {"uid": os.getuid(), "no_new_privs": status["NoNewPrivs"].strip()}
"""


def sandbox(**limits: Any) -> BubblewrapExecutor:
    return BubblewrapExecutor(SandboxLimits(**limits))


EXECUTORS: dict[str, Callable[[], ToolExecutor]] = {"sandbox": sandbox, "subprocess": SubprocessExecutor}


@pytest.fixture(params=sorted(EXECUTORS))
def executor(request: pytest.FixtureRequest) -> ToolExecutor:
    made: ToolExecutor = EXECUTORS[request.param]()
    return made


async def call(executor: ToolExecutor, name: str, timeout_s: float = 60.0, **arguments: Any) -> ToolResult:
    return await executor.run(ToolCall("bob", ATTACKS, name, arguments, timeout_s=timeout_s))


@pytest.fixture
def marker() -> Iterator[str]:
    with process_marker() as word:
        yield word


def isolated(executor: ToolExecutor) -> bool:
    return executor.isolates_tenants


async def test_a_trivial_tool_runs() -> None:
    result = await sandbox().run(ToolCall("bob", "def t(x):\n    return x * 2\n", "t", {"x": 21}))
    assert (result.status, result.value) == ("success", "42")


def test_the_sandbox_runs_an_interpreter_that_lives_under_tmp(tmp_path: Path) -> None:
    """A checkout (and its venv) under /tmp, as CI may clone it: the tool's tmpfs on /tmp must not hide it."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    site = [p for p in sys.path if p.endswith("site-packages")]
    package = str(Path(__file__).resolve().parents[2] / "layers" / "chorus")
    probe = "from chorus.tools.bubblewrap import bubblewrap_problem; print(bubblewrap_problem())"
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", probe],
        env={**os.environ, "PYTHONPATH": os.pathsep.join([package, *site])},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "None", done.stdout


async def test_the_tool_runs_without_privileges() -> None:
    found = (await call(sandbox(), "identity")).value
    assert '"no_new_privs": "1"' in found, "a setuid binary under /usr must not give root back"
    if os.geteuid() == 0:
        uid = int(found.split('"uid": ')[1].split(",")[0])
        assert uid >= SANDBOX_UID_BASE, "a root server's tool must not run as root (RLIMIT_NPROC exempts root)"


@pytest.fixture
def server() -> Iterator[int]:
    """A process standing for the server: root, like the server here, with secrets in its environment."""
    env = {**os.environ, "CHORUS_API_KEYS": "ka=alice,kb=bob", "AWS_SECRET_ACCESS_KEY": "aws-secret-marker"}
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], env=env)
    yield process.pid
    process.kill()
    process.wait()


async def test_the_server_environment_is_out_of_reach(executor: ToolExecutor, server: int) -> None:
    environ = (await call(executor, "read", path=f"/proc/{server}/environ")).value
    assert ("aws-secret-marker" in environ) is not isolated(executor)
    for pid in (1, 2):  # what a sandboxed tool sees of its parents: bwrap, with the tool's own environment
        assert "aws-secret-marker" not in (await call(executor, "read", path=f"/proc/{pid}/environ")).value


async def test_the_tool_environment_holds_no_secret(executor: ToolExecutor, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHORUS_API_KEYS", "ka=alice,kb=bob")
    monkeypatch.setenv("OPENAI_API_KEY", "openai-secret-marker")
    found = (await call(executor, "environment")).value
    assert "secret-marker" not in found and "ka=alice" not in found


async def test_server_memory_is_out_of_reach(executor: ToolExecutor, server: int) -> None:
    found = (await call(executor, "read_mem", pid=server)).value
    assert found.startswith("refused") is isolated(executor), found


async def test_server_files_are_out_of_reach(executor: ToolExecutor, tmp_path: Path) -> None:
    database = tmp_path / "chorus.db"
    database.write_text("alice's secret rows")
    found = (await call(executor, "read", path=str(database))).value
    assert ("alice's secret rows" in found) is not isolated(executor)
    planted = tmp_path / "planted"
    assert (await call(executor, "write", path=str(planted))).value.startswith("refused") is isolated(executor)
    assert planted.exists() is not isolated(executor)


async def test_only_its_tmpfs_is_writable() -> None:
    executor = sandbox()
    for path in ("/planted", "/usr/planted", "/etc/planted", f"{os.path.dirname(os.__file__)}/planted"):
        assert (await call(executor, "write", path=path)).value.startswith("refused"), path
    assert (await call(executor, "write", path="/tmp/mine")).value == "written"


async def test_the_network_is_off(executor: ToolExecutor) -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = (await call(executor, "connect", port=port)).value
    assert found.startswith("refused") is isolated(executor), found


async def test_the_network_on_reaches_the_host() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        found = (await call(sandbox(network=True), "connect", port=listener.getsockname()[1])).value
    assert found == "connected"


async def test_the_server_cannot_be_signalled(executor: ToolExecutor, server: int) -> None:
    found = (await call(executor, "signal_process", pid=server)).value
    assert found.startswith("refused") is isolated(executor), found


async def test_a_call_sees_only_its_own_processes() -> None:
    executor = sandbox()
    assert os.getpid() not in [int(p) for p in (await call(executor, "processes")).value.strip("[]").split(", ")]
    assert (await call(executor, "processes")).value in ("[1, 2]", "[1, 2, 3]")


async def test_an_escaping_grandchild_dies_with_the_call(executor: ToolExecutor, marker: str) -> None:
    assert (await call(executor, "escape", marker=marker)).value == "spawned"
    if isolated(executor):
        assert await all_gone(marker), "a setsid() grandchild outlived the call"
    else:
        assert running(marker), "the plain child cannot hold a process that left its session"
        for pid in running(marker):  # while the loop runs, so the call's pipes it held close cleanly
            os.kill(pid, signal.SIGKILL)
        assert await all_gone(marker)
        await asyncio.sleep(0.2)


async def test_timeout_kills_the_whole_namespace(marker: str) -> None:
    executor = sandbox()
    task = asyncio.create_task(call(executor, "spawn_and_sleep", timeout_s=600, marker=marker))
    for _ in range(400):
        if running(marker):
            break
        await asyncio.sleep(0.05)
    assert running(marker), "the tool's child never started"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await all_gone(marker)
    result = await call(executor, "spawn_and_sleep", timeout_s=3, marker=marker)
    assert (result.status, result.value) == ("error", "Tool spawn_and_sleep timed out after 3 s")
    assert await all_gone(marker)


async def test_memory_is_bounded() -> None:
    assert (await call(sandbox(memory_mb=256), "allocate", mib=2048)).value == "refused: MemoryError"
    assert (await call(sandbox(memory_mb=256), "allocate", mib=16)).value == "allocated 16 MiB"


async def test_file_size_is_bounded() -> None:
    assert (await call(sandbox(max_file_mb=2, tmp_mb=64), "write_big", mib=8)).value == "refused: OSError"
    assert (await call(sandbox(max_file_mb=16, tmp_mb=64), "write_big", mib=8)).value == "written"


async def test_the_tmpfs_is_bounded() -> None:
    assert (await call(sandbox(max_file_mb=64, tmp_mb=4), "write_big", mib=8)).value == "refused: OSError"


async def test_open_files_are_bounded() -> None:
    found = (await call(sandbox(max_open_files=64), "open_many", n=1000)).value
    assert found.startswith("refused after") and found.endswith("OSError"), found
    assert int(found.split()[2].rstrip(":")) < 64


async def test_a_fork_bomb_is_contained() -> None:
    found = (await call(sandbox(max_processes=16), "fork_bomb", n=200)).value
    assert found.startswith("refused after") and found.endswith("BlockingIOError"), found
    assert int(found.split()[2].rstrip(":")) < 16


async def test_cpu_time_is_bounded() -> None:
    result = await call(sandbox(cpu_s=1), "burn", timeout_s=120)
    assert result.status == "error"
    assert "killed by SIGXCPU" in result.value or "killed by SIGKILL" in result.value, result.value


async def test_concurrent_calls_do_not_share_a_process_budget() -> None:
    executor = sandbox(max_processes=12)
    found = await asyncio.gather(*(call(executor, "fork_bomb", n=8) for _ in range(4)))
    assert [r.value for r in found] == ["forked 8"] * 4
