"""Running as on Lambda in a test: Powertools on, and the stdlib `chorus` logger restored afterwards."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from chorus import observability


@contextmanager
def as_on_lambda(monkeypatch: pytest.MonkeyPatch, function_name: str) -> Iterator[None]:
    """As on Lambda; afterwards the `chorus` logger is plain stdlib again (caplog needs propagation)."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", function_name)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "Chorus")
    observability.logger.cache_clear()
    try:
        yield
    finally:
        stdlib = logging.getLogger("chorus")
        stdlib.handlers.clear()
        stdlib.propagate = True
        stdlib.setLevel(logging.NOTSET)
        for attribute in ("powertools_handler", "init", "logger_handler", "powertools_buffer_config"):
            stdlib.__dict__.pop(attribute, None)  # Powertools marks the stdlib logger it configured
        observability.logger.cache_clear()
