"""The app on the DynamoDB store (moto): `make_app`, and so `client`, build it with a fresh table per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from chorus.api import create_app
from chorus.settings import Settings
from dynamodb_support import dynamodb_store, moto_dynamodb

for suite in ("functional", "faults"):  # those suites run here too, on DynamoDB
    sys.path.insert(0, str(Path(__file__).parent.parent / suite))


@pytest.fixture
def dynamodb(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A moto DynamoDB client with the store's table."""
    with moto_dynamodb(monkeypatch) as client:
        yield client


@pytest.fixture
def make_app(settings: Settings, dynamodb: Any) -> Callable[..., FastAPI]:
    def make(**overrides: Any) -> FastAPI:
        config = settings.model_copy(update={"store": "dynamodb", **overrides.pop("settings", {})})
        overrides.setdefault("store", dynamodb_store(dynamodb, retention_s=config.event_retention_s))
        return create_app(config, **overrides)

    return make
