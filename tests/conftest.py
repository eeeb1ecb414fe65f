"""Fixtures shared by every suite.

`make_app` builds the app on SQLite. A test marked `both_stores` runs twice, on SQLite and on
DynamoDB (moto, a fresh table per test): the `store_kind` fixture is parametrised for it, and
`make_app`, `client` and `api` follow. A suite that only ever runs on DynamoDB overrides
`store_kind` (tests/aws/conftest.py).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.api import create_app
from chorus.settings import Settings
from chorus.store.base import Store
from support.dynamodb import dynamodb_store, moto_dynamodb

STORE_KINDS = ("sqlite", "dynamodb")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "both_stores: run the test on SQLite and on DynamoDB (moto)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if metafunc.definition.get_closest_marker("both_stores") and "store_kind" in metafunc.fixturenames:
        metafunc.parametrize("store_kind", STORE_KINDS, indirect=True)


@pytest.fixture
def store_kind(request: pytest.FixtureRequest) -> str:
    """The store the app runs on: SQLite unless the test is marked `both_stores` (then each in turn)."""
    kind: str = getattr(request, "param", "sqlite")
    return kind


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB client with the store's table."""
    with moto_dynamodb(monkeypatch) as client:
        yield client


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "chorus.db", ping_interval_s=30, log_flush_interval_s=0.01)


@pytest.fixture
def make_app(settings: Settings, store_kind: str, request: pytest.FixtureRequest) -> Callable[..., FastAPI]:
    """The app factory on the test's store; `make(settings={...}, **create_app_overrides)`."""
    client = request.getfixturevalue("dynamodb") if store_kind == "dynamodb" else None

    def make(**overrides: Any) -> FastAPI:
        config = settings.model_copy(update=overrides.pop("settings", {}))
        if client is not None:
            config = config.model_copy(update={"store": "dynamodb"})
            overrides.setdefault("store", dynamodb_store(client, retention_s=config.event_retention_s))
        return create_app(config, **overrides)

    return make


@pytest.fixture
async def client(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan running (ASGITransport buffers bodies: no timing tests here)."""
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c


@pytest.fixture
async def api(make_app: Callable[..., FastAPI]) -> AsyncIterator[tuple[httpx.AsyncClient, Store]]:
    """A client of the app in-process and the store behind it, for tests that check what was written."""
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c, app.state.services.store


@pytest.fixture
def chorus_logs(capsys: pytest.CaptureFixture[str]) -> Iterator[pytest.CaptureFixture[str]]:
    """`capsys` that also sees the `chorus` logger's lines.

    The Powertools Logger is built once per process and its handler keeps the
    `sys.stdout` of that moment, which is pytest's capture of whichever test
    built it first: without re-pointing, a test's logs reach `capsys` or not
    depending on the order tests ran in.
    """
    streams = [h for h in logging.getLogger("chorus").handlers if isinstance(h, logging.StreamHandler)]
    before = [h.setStream(sys.stdout) for h in streams]
    yield capsys
    for handler, stream in zip(streams, before, strict=True):
        handler.setStream(stream)
