"""Attacks a tenant's custom tool made on a real server, each of which used to work, must fail under `sandbox`.

A real uvicorn server on loopback with two API-key tenants (alice and bob)
and secrets in its environment; bob registers each attack as a tool and has
his agent call it; the assertions are on what came back to bob and on the
host afterwards. Skipped, with the reason, where bubblewrap cannot run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from chorus.devserver import Server, running_server
from chorus.tools.bubblewrap import bubblewrap_problem
from support import create_group, payloads, stream
from support.host_processes import all_gone, process_marker

PROBLEM = bubblewrap_problem()
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(PROBLEM is not None, reason=f"the sandbox cannot run here: {PROBLEM}"),
]

ALICE, BOB = "ka-alice-key", "kb-bob-key"
AWS_SECRET = "aws-secret-marker-5f1c"
PROVIDER_KEY = "sk-provider-marker-77aa"
ALICE_SECRET = "alice-private-memory-9d3e"
TOOL_TIMEOUT_S = 5


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    env = {
        "CHORUS_API_KEYS": f"{ALICE}=alice,{BOB}=bob",
        "CHORUS_TOOL_EXECUTOR": "sandbox",
        "CHORUS_TOOL_TIMEOUT_S": str(TOOL_TIMEOUT_S),
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
        "OPENAI_API_KEY": PROVIDER_KEY,
    }
    with running_server(env) as s:
        yield s


def client_of(server: Server, key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=120)


@pytest.fixture
async def bob(server: Server) -> AsyncIterator[httpx.AsyncClient]:
    async with client_of(server, ALICE) as alice:  # alice's data, for bob's tools to go after
        block = {"label": "secrets", "value": ALICE_SECRET}
        agent = await alice.post("/v1/agents", json={"name": "Alice's", "memory_blocks": [block]})
        assert agent.status_code == 200, agent.text
    async with client_of(server, BOB) as client:
        yield client


async def attack(bob: httpx.AsyncClient, source: str, arguments: dict[str, Any] | None = None) -> dict[str, Any]:
    """Register `source` as bob's tool, have his agent call it, return the tool return message (and the run's text)."""
    tool = await bob.put("/v1/tools", json={"source_code": source})
    assert tool.status_code == 200, tool.text
    name = tool.json()["name"]
    script = {"steps": [[{"name": name, "arguments": arguments or {}}]], "replies": ["done"]}
    body = {"name": "Mallory", "tool_ids": [tool.json()["id"]], "metadata": {"scripted": script}}
    agent = await bob.post("/v1/agents", json=body)
    assert agent.status_code == 200, agent.text
    group = await create_group(bob, [agent.json()["id"]])
    events = payloads(await stream(bob, group["id"], {"input": "Go."}))
    assert events[-2]["stop_reason"] == "end_turn", events
    found: dict[str, Any] = next(e for e in events if e["message_type"] == "tool_return_message")
    found["everything"] = repr(events)
    return found


def leaked(found: dict[str, Any]) -> list[str]:
    return [s for s in (AWS_SECRET, PROVIDER_KEY, ALICE, ALICE_SECRET, "ka-alice") if s in found["everything"]]


READ_SERVER_ENVIRON = '''
def read_server_environ(pid: int) -> str:
    """Read the server's environment.

    Args:
        pid: the server's pid
    """
    import os
    out = [repr(dict(os.environ))]
    for path in (f"/proc/{pid}/environ", f"/proc/{os.getppid()}/environ", "/proc/1/environ"):
        try:
            out.append(open(path, "rb").read().decode("latin-1"))
        except OSError as exc:
            out.append(f"{path}: {type(exc).__name__}")
    return "\\n".join(out)
'''


async def test_the_server_environment_is_out_of_reach(server: Server, bob: httpx.AsyncClient) -> None:
    found = await attack(bob, READ_SERVER_ENVIRON, {"pid": server.pid})
    assert found["status"] == "success"
    assert f"/proc/{server.pid}/environ: FileNotFoundError" in found["tool_return"]
    assert leaked(found) == []


READ_SERVER_MEMORY = '''
def read_server_memory(pid: int) -> str:
    """Scan the server's memory.

    Args:
        pid: the server's pid
    """
    try:
        with open(f"/proc/{pid}/mem", "rb") as mem:
            return f"read {len(mem.read(64))} bytes"
    except OSError as exc:
        return f"refused: {type(exc).__name__}"
'''


async def test_server_memory_is_out_of_reach(server: Server, bob: httpx.AsyncClient) -> None:
    found = await attack(bob, READ_SERVER_MEMORY, {"pid": server.pid})
    assert found["tool_return"] == "refused: FileNotFoundError"


READ_DATABASE = '''
def read_database(path: str) -> str:
    """Read every tenant's rows.

    Args:
        path: the SQLite file
    """
    import sqlite3
    try:
        with open(path, "rb") as f:
            return f.read().decode("latin-1")
    except OSError as exc:
        opened = f"open: {type(exc).__name__}"
    try:
        rows = sqlite3.connect(f"file:{path}?mode=ro", uri=True).execute("select * from sqlite_master").fetchall()
        return opened + f"; sqlite: {rows}"
    except sqlite3.Error as exc:
        return opened + f"; sqlite: {type(exc).__name__}"
'''


async def test_the_database_is_out_of_reach(server: Server, bob: httpx.AsyncClient) -> None:
    files = [server.db_path, server.db_path.with_name(server.db_path.name + "-wal")]
    assert any(ALICE_SECRET.encode() in f.read_bytes() for f in files if f.exists()), "alice's data is there"
    for path in files:
        found = await attack(bob, READ_DATABASE, {"path": str(path)})
        assert found["tool_return"] == "open: FileNotFoundError; sqlite: OperationalError"
        assert leaked(found) == []


USE_THE_API = '''
def use_the_api(url: str, key: str) -> str:
    """Call the server's API with another tenant's key.

    Args:
        url: the server
        key: a key
    """
    import urllib.request
    request = urllib.request.Request(url + "/v1/agents", headers={"Authorization": "Bearer " + key})
    try:
        return urllib.request.urlopen(request, timeout=5).read().decode()
    except OSError as exc:
        return f"refused: {type(exc).__name__}"
'''


async def test_the_server_cannot_be_reached_over_the_network(server: Server, bob: httpx.AsyncClient) -> None:
    found = await attack(bob, USE_THE_API, {"url": server.url, "key": ALICE})
    assert found["tool_return"] == "refused: URLError"
    assert ALICE_SECRET not in found["everything"]


SIGNAL_THE_SERVER = '''
def signal_the_server(pid: int) -> str:
    """Check whether the server, or anything at all, can be signalled.

    Args:
        pid: the server's pid
    """
    import os
    out = []
    for target in (pid, -1):  # -1: every process this one may signal
        try:
            os.kill(target, 0)
            out.append(f"{target}: may signal")
        except OSError as exc:
            out.append(f"{target}: {type(exc).__name__}")
    return "; ".join(out)
'''


async def test_the_server_cannot_be_signalled(server: Server, bob: httpx.AsyncClient) -> None:
    """Signal 0 runs the kernel's same lookup and permission checks as SIGSTOP or SIGKILL without delivering
    anything: should the sandbox ever break, this test fails instead of killing every process of the machine."""
    found = await attack(bob, SIGNAL_THE_SERVER, {"pid": server.pid})
    assert found["tool_return"] == f"{server.pid}: ProcessLookupError; -1: ProcessLookupError"
    assert (await bob.get("/v1/health")).status_code == 200


ESCAPE = '''
def escape(marker: str) -> str:
    """Leave a grandchild in a session of its own.

    Args:
        marker: names the grandchild
    """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(600)", marker])
        os._exit(0)
    time.sleep(0.5)
    return "spawned"
'''

SPAWN_AND_HANG = '''
def spawn_and_hang(marker: str) -> str:
    """Start a child, then never return.

    Args:
        marker: names the child
    """
    import subprocess, sys, time
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", marker], start_new_session=True)
    time.sleep(600)
    return "unreachable"
'''


@pytest.fixture
def marker() -> Iterator[str]:
    with process_marker() as word:
        yield word


async def test_an_escaping_grandchild_dies_with_the_call(bob: httpx.AsyncClient, marker: str) -> None:
    assert (await attack(bob, ESCAPE, {"marker": marker}))["tool_return"] == "spawned"
    assert await all_gone(marker)


async def test_a_timeout_kills_the_whole_namespace(bob: httpx.AsyncClient, marker: str) -> None:
    found = await attack(bob, SPAWN_AND_HANG, {"marker": marker})
    assert (found["status"], found["tool_return"]) == (
        "error",
        f"Tool spawn_and_hang timed out after {float(TOOL_TIMEOUT_S)} s",
    )
    assert await all_gone(marker)


ALLOCATE = '''
def allocate(mib: int) -> str:
    """Allocate memory.

    Args:
        mib: how much
    """
    try:
        return f"allocated {len(bytearray(mib << 20)) >> 20} MiB"
    except MemoryError:
        return "refused: MemoryError"
'''


async def test_memory_is_bounded(bob: httpx.AsyncClient) -> None:
    assert (await attack(bob, ALLOCATE, {"mib": 2048}))["tool_return"] == "refused: MemoryError"
    assert (await attack(bob, ALLOCATE, {"mib": 64}))["tool_return"] == "allocated 64 MiB"


WRITE_OUTSIDE = '''
def write_outside(paths: list[str]) -> str:
    """Plant files.

    Args:
        paths: where
    """
    out = []
    for path in paths:
        try:
            with open(path, "w") as f:
                f.write("planted")
            out.append("written")
        except OSError as exc:
            out.append(type(exc).__name__)
    return ",".join(out)
'''


async def test_only_the_tmpfs_is_writable(server: Server, bob: httpx.AsyncClient) -> None:
    targets = [str(server.db_path.parent / "planted"), "/usr/planted", "/planted", "/tmp/mine"]
    found = await attack(bob, WRITE_OUTSIDE, {"paths": targets})
    assert found["tool_return"] == "FileNotFoundError,OSError,OSError,written"
    assert not (server.db_path.parent / "planted").exists()
