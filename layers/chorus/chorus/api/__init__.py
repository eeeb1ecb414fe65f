"""The HTTP API. `chorus.api:app` is the one ASGI app everywhere."""

from chorus.api.app import create_app

app = create_app()

__all__ = ["app", "create_app"]
