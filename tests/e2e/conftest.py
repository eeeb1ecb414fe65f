"""Real uvicorn servers on loopback for the end-to-end suites."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chorus.devserver import Server, running_server


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    with running_server() as s:
        yield s


@pytest.fixture(scope="session")
def ping_server() -> Iterator[Server]:
    """A server that pings every 50 ms, to see pings without waiting 30 s."""
    with running_server({"CHORUS_PING_INTERVAL_S": "0.05"}) as s:
        yield s
