from __future__ import annotations

from fastapi import APIRouter

from chorus import __version__
from chorus.schemas.resources import Health

router = APIRouter(prefix="/v1/health", tags=["health"])


@router.get("", response_model=Health)
async def health() -> Health:
    """Liveness and version; also the Lambda Web Adapter's readiness check."""
    return Health(status="ok", version=__version__)
