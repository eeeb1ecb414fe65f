"""`/v1/groups/{group_id}/messages…`: the main endpoint, its non-streaming twin, and history.

Like Letta, the dedicated `/messages/stream` route always streams (it forces
`streaming=true`), while `/messages` returns one `LettaResponse` unless the
body says `streaming=true`; streaming-only options on a non-streaming
request are a 422 naming them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from starlette.responses import Response

from chorus.api.deps import GroupIdPath, ServicesDep, TenantDep
from chorus.api.sse import sse_response
from chorus.engine.events import MESSAGE_TYPES
from chorus.errors import ModelError
from chorus.runs.service import ActiveRun
from chorus.schemas.messages import LettaMessage, LettaResponse
from chorus.schemas.requests import MessageRequest
from chorus.store.records import Page

router = APIRouter(prefix="/v1/groups/{group_id}", tags=["groups"])

_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"text/event-stream": {}},
        "description": "Server-Sent Events, one LettaMessage per `data:`",
    }
}


def _stream(svc: ServicesDep, tenant_id: str, active: ActiveRun, request: MessageRequest) -> Response:
    run = active.plan.run
    frames = svc.runs.follow(tenant_id, run.id, include_pings=request.include_pings)

    def cancel_orphaned_run() -> None:
        svc.runs.cancel_local(run.id)

    return sse_response(frames, on_disconnect=None if request.background else cancel_orphaned_run)


@router.post("/messages/stream", responses=_STREAM_RESPONSES, response_model=None)
async def send_group_message_streaming(
    group_id: GroupIdPath, body: MessageRequest, svc: ServicesDep, tenant_id: TenantDep
) -> Response:
    """Process a user message and stream every step of the group's responses (and tokens with `stream_tokens`)."""
    body.streaming = True
    active = await svc.runs.start_group_run(tenant_id, group_id, body, streaming=True)
    return _stream(svc, tenant_id, active, body)


@router.post("/messages", response_model=LettaResponse, responses=_STREAM_RESPONSES)
async def send_group_message(
    group_id: GroupIdPath, body: MessageRequest, svc: ServicesDep, tenant_id: TenantDep
) -> Response:
    """Process a user message and return the group's whole response (or stream it with `streaming=true`)."""
    if not body.streaming:
        options = body.streaming_only_options()
        if options:
            names = ", ".join(options)
            return JSONResponse(
                {
                    "detail": f"Streaming options set without streaming enabled. {names} can only be set "
                    "when streaming=true. Either set streaming=true or use default values for streaming options."
                },
                status_code=422,
            )
    active = await svc.runs.start_group_run(tenant_id, group_id, body, streaming=body.streaming)
    if body.streaming:
        return _stream(svc, tenant_id, active, body)
    await svc.runs.wait(active)
    failure = active.plan.failure
    if failure is not None:
        detail = f"The model failed: {failure.detail}" if isinstance(failure, ModelError) else failure.detail
        return JSONResponse({"detail": detail, "run_id": active.plan.run.id}, status_code=failure.status_code)
    return JSONResponse(letta_response(active.log.events))


def letta_response(events: list[dict[str, Any]]) -> dict[str, Any]:
    """A `LettaResponse` from a finished run's events (whole messages: non-streaming runs never chunk)."""
    messages = [e for e in events if e["message_type"] in MESSAGE_TYPES]
    stop = next(e for e in events if e["message_type"] == "stop_reason")
    usage = next((e for e in events if e["message_type"] == "usage_statistics"), None)
    return {
        "messages": messages,
        "stop_reason": {"message_type": "stop_reason", "stop_reason": stop["stop_reason"]},
        "usage": usage or {"message_type": "usage_statistics"},
    }


@router.get("/messages", response_model=list[LettaMessage])
async def list_group_messages(
    group_id: GroupIdPath,
    svc: ServicesDep,
    tenant_id: TenantDep,
    before: str | None = None,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    order: Literal["asc", "desc"] = "desc",
) -> JSONResponse:
    """The group's history, newest first by default; `before`/`after` are message ids."""
    await svc.store.get_group(tenant_id, group_id)
    page = Page(before=before, after=after, limit=limit, order=order)
    records = await svc.store.list_messages(tenant_id, page, group_id=group_id)
    return JSONResponse([r.message for r in records])


@router.patch("/reset-messages")
async def reset_group_messages(group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Forget the group's history."""
    await svc.store.get_group(tenant_id, group_id)
    deleted = await svc.store.delete_group_messages(tenant_id, group_id)
    return {"message": f"Reset {deleted} messages of group {group_id}"}
