"""Buffered entry point for the same `chorus.api:app`: API Gateway, `sam local invoke`, `events/*.json`.

Mangum buffers a streaming response into one body, which is what those
callers expect; live streaming goes through the Lambda Web Adapter (`run.sh`).
"""

from __future__ import annotations

from mangum import Mangum

from chorus.api import app

handler = Mangum(app, lifespan="auto")
