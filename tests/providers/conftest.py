"""Fixtures of the provider suites: one fake provider server per session, a clean queue per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chorus.llm.retry import RetryPolicy
from support.provider_fakes import FakeServer, Pauses


@pytest.fixture(scope="session")
def fake_server() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


@pytest.fixture
def fake(fake_server: FakeServer) -> Iterator[FakeServer]:
    fake_server.reset()
    yield fake_server
    fake_server.reset()


@pytest.fixture
def pauses() -> Pauses:
    return Pauses()


@pytest.fixture
def retry(pauses: Pauses) -> RetryPolicy:
    return RetryPolicy(attempts=3, base_delay_s=0.25, sleep=pauses)
