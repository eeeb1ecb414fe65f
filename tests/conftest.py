"""Fixtures shared by every suite."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.api import create_app
from chorus.settings import Settings

sys.path.insert(0, str(Path(__file__).parent.parent / "benchmarks"))  # streamcheck, loadgen: shared with benchmarks


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(db_path=tmp_path / "chorus.db", ping_interval_s=30, log_flush_interval_s=0.01)


@pytest.fixture
def make_app(settings: Settings) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        return create_app(settings.model_copy(update=overrides.pop("settings", {})), **overrides)

    return make


@pytest.fixture
async def client(make_app: Callable[..., FastAPI]) -> AsyncIterator[httpx.AsyncClient]:
    """The app in-process with its lifespan running (ASGITransport buffers bodies: no timing tests here)."""
    app = make_app()
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
            yield c
