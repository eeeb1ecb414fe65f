"""The HTTP API. `chorus.api:app` is the one ASGI app everywhere, built on first access, once per process.

Importing `chorus.api` or any module under it (`views`, a route) builds
nothing: uvicorn's `chorus.api:app` and the Lambda handler's `from
chorus.api import app` both reach `application.shared_app()`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi import FastAPI

    from chorus.api.application import create_app

app: FastAPI

__all__ = ["app", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "app":
        from chorus.api.application import shared_app

        return shared_app()
    if name == "create_app":
        from chorus.api.application import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
