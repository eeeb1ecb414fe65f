"""API keys: compared in constant time against every key, and never shown in a repr, an error or a log."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from pydantic import SecretStr

from chorus.api.deps import match_key
from chorus.settings import Settings

KEYS = {"key-alpha-0123456789": "tenant-a", "key-bravo-9876543210": "tenant-b", "key-charlie-000000": "tenant-c"}


def test_every_configured_key_is_compared_in_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lookup that stops at the first match (or the first differing byte) leaks by its timing."""
    compared: list[bytes] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        compared.append(b)
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    assert match_key("key-alpha-0123456789", KEYS) == "tenant-a"
    assert len(compared) == len(KEYS), "stopped at the first match"
    compared.clear()
    assert match_key("key-alpha-012345678", KEYS) is None
    assert match_key("", KEYS) is None
    assert match_key("key-alpha-0123456789x", KEYS) is None
    assert len(compared) == 3 * len(KEYS)


def test_settings_never_show_the_keys() -> None:
    settings = Settings(api_keys=SecretStr("sekrit-key-1=tenant-a"))
    for text in (repr(settings), str(settings), str(settings.model_dump()), settings.model_dump_json()):
        assert "sekrit-key-1" not in text


async def test_keys_are_not_in_logs_or_errors(
    make_app: Callable[..., FastAPI], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = make_app(settings={"api_keys": SecretStr("sekrit-key-1=tenant-a"), "host": "0.0.0.0"})
    seen: list[str] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            for headers in ({"Authorization": "Bearer sekrit-key-1x"}, {"Authorization": "sekrit-key-1"}, {}):
                response = await client.get("/v1/agents", headers=headers)
                assert response.status_code == 401
                seen.append(response.text)
            ok: Any = await client.get("/v1/agents", headers={"Authorization": "Bearer sekrit-key-1"})
            assert ok.status_code == 200
            seen.append((await client.get("/openapi.json")).text)
    seen.append(caplog.text)
    assert all("sekrit-key-1" not in text for text in seen)
