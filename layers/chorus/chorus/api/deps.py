"""Request-scoped dependencies: services from the app's state, the caller's tenant, path ids."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Literal

import anyio
from fastapi import Depends, Header, Path, Query, Request

from chorus.errors import Unauthorized
from chorus.ids import example, pattern
from chorus.limits import MAX_PAGE_LIMIT
from chorus.store.base import Store
from chorus.store.records import Page
from chorus.tenancy import ANONYMOUS_TENANT, parse_api_keys

if TYPE_CHECKING:  # imported when the app starts (its lifespan), not when it is built
    from chorus.runs.service import RunService
    from chorus.settings import Settings


@dataclass(slots=True)
class Services:
    settings: Settings
    store: Store
    runs: RunService
    api_keys: dict[str, str]
    """Bearer key → tenant; empty means the single anonymous local tenant."""
    api_keys_loader: Callable[[], str] | None = None
    """Returns the `key=tenant,…` pairs (AWS: an SSM parameter, cached); when set, it replaces `api_keys`."""


def services(request: Request) -> Services:
    svc: Services = request.app.state.services
    return svc


async def tenant(
    svc: Annotated[Services, Depends(services)],
    authorization: Annotated[str | None, Header()] = None,
) -> str:
    """The caller's tenant. Without configured keys every caller is the anonymous local tenant.

    With a keys loader (an SSM parameter on AWS) there is no anonymous tenant: an empty
    parameter lets nobody in.
    """
    keys = svc.api_keys
    if svc.api_keys_loader is not None:
        keys = parse_api_keys(await anyio.to_thread.run_sync(svc.api_keys_loader))  # boto3 off the loop
    elif not keys:
        return ANONYMOUS_TENANT
    scheme, _, key = (authorization or "").partition(" ")
    found = match_key(key.strip(), keys) if scheme.lower() == "bearer" else None
    if found is None:
        raise Unauthorized("Missing or invalid API key: send 'Authorization: Bearer <key>'.")
    return found


def match_key(candidate: str, keys: dict[str, str]) -> str | None:
    """The tenant of `candidate`, compared with every configured key in constant time.

    A dict lookup (or `==`) returns as soon as a byte differs, so its timing tells
    an attacker how much of a guess is right; here every key is compared in full,
    whichever matches, so the time depends only on how many keys there are.
    """
    given = candidate.encode("utf-8", "surrogatepass")
    found = None
    for key, tenant_id in keys.items():
        if hmac.compare_digest(given, key.encode("utf-8", "surrogatepass")):
            found = tenant_id
    return found


def _id_path(prefix: str, alias: str | None = None) -> Any:
    return Path(
        alias=alias,
        pattern=pattern(prefix),
        min_length=len(example(prefix)),
        max_length=len(example(prefix)),
        description=f"The id in the format '{prefix}-<uuid4>'",
        examples=[example(prefix)],
    )


def owner_id_path(prefix: str) -> Any:
    """The `{<prefix>}_id` path parameter as a default value, for a route declared once for several kinds
    of owner (`chorus.api.message_sends`): its parameter has one name, the path's has the owner's."""
    return _id_path(prefix, alias=f"{prefix}_id")


ServicesDep = Annotated[Services, Depends(services)]
TenantDep = Annotated[str, Depends(tenant)]
AgentIdPath = Annotated[str, _id_path("agent")]
GroupIdPath = Annotated[str, _id_path("group")]
RunIdPath = Annotated[str, _id_path("run")]
BlockIdPath = Annotated[str, _id_path("block")]
ToolIdPath = Annotated[str, _id_path("tool")]
McpServerIdPath = Annotated[str, _id_path("mcp_server")]


def page(
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 50,
    order: Literal["asc", "desc"] = "desc",
) -> Page:
    """Letta's cursor pagination: `before`/`after` are ids of the listed kind, exclusive."""
    return Page(before=before, after=after, limit=limit, order=order)


def ascending_page(
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_LIMIT)] = 100,
    order: Literal["asc", "desc"] = "asc",
) -> Page:
    """Pagination for what reads oldest first by default (a run's messages)."""
    return Page(before=before, after=after, limit=limit, order=order)


PageDep = Annotated[Page, Depends(page)]
AscendingPageDep = Annotated[Page, Depends(ascending_page)]
