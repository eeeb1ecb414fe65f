"""The AWS suite runs the app on DynamoDB (moto), a fresh table per test: `make_app`, `client` and `api` follow."""

from __future__ import annotations

import pytest


@pytest.fixture
def store_kind() -> str:
    return "dynamodb"
