"""The one ASGI app, `chorus.api:app`, used by uvicorn locally, behind the Lambda Web Adapter and by Mangum."""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import cache
from typing import TYPE_CHECKING

from fastapi import FastAPI

from chorus import __version__, observability, snapstart
from chorus.api import errors
from chorus.api.body_limit import BodyLimit
from chorus.api.host_guard import HostGuard
from chorus.api.http_policy import HttpPolicy, parse_hosts
from chorus.api.lazy_routes import LazyRoutes, RouteModules
from chorus.api.slashes import CollectionSlash

if TYPE_CHECKING:  # the settings and the run machinery are imported when the app starts, not when it is built
    from chorus.runs.driver import ModelResolver
    from chorus.settings import Settings
    from chorus.store.base import Store

logger = logging.getLogger("chorus")

# FastAPI wraps a route's `body` model in a pydantic TypeAdapter carrying the parameter's name as an
# alias, and silences pydantic's warning that such an alias has no effect while it builds the adapter.
# The models are built on first use (`chorus.schemas`), so the adapter is built, and would warn, at the
# first request (or OpenAPI document) instead: the same warning, silenced for good here.
warnings.filterwarnings(
    "ignore",
    message=r"The 'alias' attribute with value 'body' was provided to the `Field\(\)` function",
    category=UserWarning,
    module=r"pydantic\._internal\._generate_schema",
)


def create_app(
    settings: Settings | None = None, store: Store | None = None, resolver: ModelResolver | None = None
) -> FastAPI:
    """Build the app. Tests inject a `store` (opened and closed by the app) and a model `resolver`.

    Without explicit `settings`, they are read when the app starts (its lifespan), not when it
    is built, so the module-level `chorus.api:app` follows the environment of the process
    that serves it.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from chorus.api.deps import Services
        from chorus.runs.service import RunService
        from chorus.settings import get_settings
        from chorus.store.factory import build_store
        from chorus.tenancy import parse_api_keys
        from chorus.workflow.executor import remote_executor

        if on_lambda:  # Powertools is imported only here, when the app starts: nothing to pay locally
            observability.logger()
        config = settings or get_settings()
        the_store = store or build_store(config)
        if on_lambda:
            the_store = observability.instrument(the_store)
        await the_store.open()
        run_service = RunService(the_store, config, resolver=resolver, remote=remote_executor(config, the_store))
        loader = observability.api_keys_loader(config.api_keys_parameter) if config.api_keys_parameter else None
        keys = parse_api_keys(config.api_keys)
        app.state.services = Services(config, the_store, run_service, keys, loader)
        policy.configure(config, has_keys=bool(keys) or loader is not None, on_lambda=on_lambda)
        _announce(config)
        logger.info("Custom tools run in: %s", run_service.tool_executor.name)
        run_service.start_sweeper()
        try:
            yield
        finally:
            await run_service.shutdown()
            await the_store.close()

    app = FastAPI(
        title="Chorus",
        version=__version__,
        description="Serverless multi-agent orchestrator speaking the Letta groups API.",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    on_lambda = observability.enabled()
    if on_lambda:
        app.add_middleware(observability.PowertoolsMiddleware)
        snapstart.install_api_hooks(app)  # the Lambda Web Adapter relays SnapStart's hooks when configured
    errors.install(app)
    # routes (`/v1`, the viewer, `/docs`) are included by the first request that needs them (`lazy_routes`)
    app.state.routes = RouteModules(app)
    app.add_middleware(CollectionSlash, patterns=app.state.routes.collection_patterns)
    app.add_middleware(LazyRoutes, modules=app.state.routes)
    policy = HttpPolicy()
    app.add_middleware(BodyLimit, policy=policy)
    app.add_middleware(HostGuard, policy=policy)  # the outermost: a forged request costs nothing more
    return app


@cache
def shared_app() -> FastAPI:
    """The process's one app (`chorus.api:app`), built on first use: uvicorn and the Lambda handler share it."""
    return create_app()


def _announce(settings: Settings) -> None:
    model = settings.default_model or "scripted/default"
    if settings.default_model is None:
        logger.warning(
            "No model provider configured: agents created without a model use the offline "
            "'scripted' model (deterministic replies). Set CHORUS_DEFAULT_MODEL to use a real one."
        )
    logger.info("Chorus %s: store=%s, default model=%s", __version__, settings.store, model)
    if settings.api_keys_parameter:
        logger.info("API keys from SSM parameter %s", settings.api_keys_parameter)
    elif not settings.api_keys and settings.host not in ("127.0.0.1", "localhost", "::1"):
        logger.warning("No API keys configured while bound to %s: anyone who can reach it can use it.", settings.host)
    if not settings.api_keys and not settings.api_keys_parameter and "*" in parse_hosts(settings.allowed_hosts):
        logger.warning("No API keys and CHORUS_ALLOWED_HOSTS=*: a web page the user visits can drive this server.")
