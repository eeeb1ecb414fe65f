"""A tool that kills the server cannot take the service down for good.

A real server (uvicorn in a subprocess, one SQLite file across restarts)
runs a group whose agent calls a tool that SIGKILLs its parent: the server.
Each restart adopts the orphaned run and re-runs the unfinished step, which
kills the server again, until `CHORUS_MAX_RUN_ATTEMPTS` workers died on that
step; then the restarted server ends the run `failed` with an
`error_message` naming why (and the tool), releases the group, and stays up
to take the group's next message.

The server is started with `CHORUS_TOOL_EXECUTOR=subprocess`: the plain
child-process tool runner, whose child can signal the server. (A sandboxed
runner would stop the tool from reaching the server at all; this test is
about what recovery does when a step kills its worker, whatever the cause.)
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from textwrap import dedent
from typing import Any

import httpx
import pytest

from chorus.devserver import free_port

pytestmark = pytest.mark.e2e

ATTEMPTS = 3
WAIT_S = 60.0
"""Generous bound on any one wait (a start-up, a death, a recovery); none is timed."""


def kill_server(reason: str) -> str:
    """Kills the process that started this tool.

    Args:
        reason: Why.
    """
    import os
    import signal
    import time

    time.sleep(0.5)
    os.kill(os.getppid(), signal.SIGKILL)
    return "unreachable"


class Server:
    """The server on one port and one SQLite file, restarted as often as it dies."""

    def __init__(self, db: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "CHORUS_DB_PATH": str(db),
            "CHORUS_LEASE_TTL_S": "2",
            "CHORUS_MAX_RUN_ATTEMPTS": str(ATTEMPTS),
            "CHORUS_TOOL_EXECUTOR": "subprocess",
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.deaths = 0

    def start(self) -> None:
        command = [
            sys.executable, "-m", "uvicorn", "chorus.api:app", "--host", "127.0.0.1", "--port", str(self.port),
            "--log-level", "warning", "--no-access-log",
        ]  # fmt: skip
        self.process = subprocess.Popen(command, env=self.env)
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return  # died while starting (it adopted the poisoned run at once): the caller counts it
            try:
                if httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise AssertionError("the server did not start")

    def died(self, within_s: float) -> bool:
        """Wait up to `within_s` for the server to die; count it if it did."""
        assert self.process is not None
        try:
            code = self.process.wait(timeout=within_s)
        except subprocess.TimeoutExpired:
            return False
        assert code == -9, f"the server ended otherwise than killed: {code}"
        self.deaths += 1
        return True

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


@contextmanager
def server_on(db: Path) -> Iterator[Server]:
    server = Server(db)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def run_of(server: Server, run_id: str) -> dict[str, Any]:
    run: dict[str, Any] = httpx.get(f"{server.url}/v1/runs/{run_id}", timeout=10).json()
    return run


def test_a_step_that_kills_its_server_fails_its_run_after_the_bound(tmp_path: Path) -> None:
    with server_on(tmp_path / "chorus.db") as server:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            tool = client.put("/v1/tools", json={"source_code": dedent(inspect.getsource(kill_server))}).json()
            calls = [{"name": "kill_server", "arguments": {"reason": "hostile"}}]
            script = {"steps": [calls], "replies": ["never said"]}
            agent = client.post(
                "/v1/agents", json={"name": "Mallory", "tool_ids": [tool["id"]], "metadata": {"scripted": script}}
            ).json()
            group = client.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()
            sent = client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "go"})
            assert sent.status_code == 200, sent.text
            run_id = sent.json()["id"]
        assert server.died(WAIT_S), "the tool killed the server"

        # every restart adopts the run and dies on the same step, until the bound ends the run
        for _ in range(ATTEMPTS * 2):
            server.start()
            if not server.died(within_s=8.0):
                break
        assert server.deaths == ATTEMPTS, f"the server died {server.deaths} times"

        deadline = time.monotonic() + WAIT_S
        while run_of(server, run_id)["status"] in ("created", "running") and time.monotonic() < deadline:
            time.sleep(0.1)
        run = run_of(server, run_id)
        assert run["status"] == "failed" and run["stop_reason"] == "error", run
        stream = httpx.post(f"{server.url}/v1/runs/{run_id}/stream", json={}, timeout=10).text
        data = [line[6:] for line in stream.splitlines() if line.startswith("data: ")]
        assert data[-1] == "[DONE]"
        logged = [json.loads(d) for d in data[:-1]]
        errors = [e for e in logged if e["message_type"] == "error_message"]
        streamed = {e["id"] for e in logged if e["message_type"] == "tool_call_message"}
        abandoned = {i for e in logged if "abandoned" in e for i in e["abandoned"]["message_ids"]}
        assert streamed and streamed <= abandoned, "every dead attempt's tool call is marked abandoned"
        assert len(errors) == 1
        message = errors[0]["message"]
        assert f"stopped {ATTEMPTS} times" in message and "kill_server" in message and "Mallory" in message

        # the server stays up and the group takes its next message
        with httpx.Client(base_url=server.url, timeout=30) as client:
            quiet = {"metadata": {"scripted": {"replies": ["fine now"], "use_tools": False}}}
            assert client.patch(f"/v1/agents/{agent['id']}", json=quiet).status_code == 200
            answer = client.post(f"/v1/groups/{group['id']}/messages", json={"input": "again"})
            assert answer.status_code == 200, answer.text
            assert answer.json()["stop_reason"]["stop_reason"] == "end_turn"
        assert server.process is not None and server.process.poll() is None
