"""`/v1/groups/{group_id}/messages…`: the main endpoint, its non-streaming and async twins, cancel, history.

Like Letta, the dedicated `/messages/stream` route always streams (it forces
`streaming=true`), while `/messages` returns one `LettaResponse` unless the
body says `streaming=true`; streaming-only options on a non-streaming
request are a 422 naming them.

Beyond Letta: an `Idempotency-Key` header makes a retried send return the
run the first one started (streaming: replayed from the start, or after
`Last-Event-ID`, then followed live; non-streaming: the same result), and a
send to a group whose previous run is still active is a 409 naming it, unless the body's
`multitask_strategy` (a Chorus extension) asks to wait (`enqueue`) or to cancel it
(`interrupt`, `rollback`): see `chorus.runs.multitask`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from starlette.responses import Response

from chorus.api.deps import GroupIdPath, PageDep, ServicesDep, TenantDep
from chorus.api.errors import RUN_ERROR_STATUS
from chorus.api.json_body import JsonRoute
from chorus.api.listing import json_size, within_budget
from chorus.api.sse import sse_response
from chorus.api.views import letta_response, run_state
from chorus.errors import Conflict
from chorus.runs.multitask import is_queued
from chorus.runs.starting import Started
from chorus.schemas.messages import LettaMessage, LettaResponse
from chorus.schemas.requests import CancelRequest, MessageRequest
from chorus.schemas.resources import RunState

router = APIRouter(route_class=JsonRoute, prefix="/v1/groups/{group_id}", tags=["groups"])

_STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, one LettaMessage per `data:`"}
}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0)]


def _stream(svc: ServicesDep, tenant_id: str, started: Started, include_pings: bool, after: int | None) -> Response:
    run = started.run
    if is_queued(run) and not started.replay:
        frames = svc.runs.multitask.stream(
            run, lambda: svc.runs.follow(tenant_id, run.id, include_pings=include_pings), include_pings=include_pings
        )
        if run.background:
            return sse_response(frames)
        return sse_response(frames, on_disconnect=lambda: svc.runs.cancel_soon(tenant_id, run))
    frames = svc.runs.follow(tenant_id, run.id, after or 0, include_pings=include_pings)
    if run.background or started.replay:
        return sse_response(frames)

    def cancel_orphaned_run() -> None:
        svc.runs.cancel_local(run.id)

    return sse_response(frames, on_disconnect=cancel_orphaned_run)


@router.post("/messages/stream", responses=_STREAM_RESPONSES, response_model=None)
async def send_group_message_streaming(
    group_id: GroupIdPath,
    body: MessageRequest,
    svc: ServicesDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
    last_event_id: LastEventId = None,
) -> Response:
    """Process a user message and stream every step of the group's responses (and tokens with `stream_tokens`)."""
    body.streaming = True
    started = await svc.runs.start_group_run(tenant_id, group_id, body, streaming=True, idempotency_key=idempotency_key)
    return _stream(svc, tenant_id, started, body.include_pings, last_event_id if started.replay else None)


@router.post("/messages", response_model=LettaResponse, responses=_STREAM_RESPONSES)
async def send_group_message(
    group_id: GroupIdPath,
    body: MessageRequest,
    svc: ServicesDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
    last_event_id: LastEventId = None,
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
    started = await svc.runs.start_group_run(
        tenant_id, group_id, body, streaming=body.streaming, idempotency_key=idempotency_key
    )
    if body.streaming:
        return _stream(svc, tenant_id, started, body.include_pings, last_event_id if started.replay else None)
    if is_queued(started.run):
        await svc.runs.multitask.wait_turn(tenant_id, started.run.id)
    run = await svc.runs.wait_terminal(tenant_id, started.run.id)
    events = await svc.runs.events_of(tenant_id, run.id)
    failure = next((e for e in events if e["message_type"] == "error_message"), None)
    if failure is not None:
        status = RUN_ERROR_STATUS.get(failure["error_type"], 500)
        return JSONResponse({"detail": failure["message"], "run_id": run.id}, status_code=status)
    return JSONResponse(letta_response(events))


@router.post("/messages/async", response_model=RunState)
async def send_group_message_async(
    group_id: GroupIdPath,
    body: MessageRequest,
    svc: ServicesDep,
    tenant_id: TenantDep,
    idempotency_key: IdempotencyKey = None,
) -> RunState:
    """Start the group run in the background and return it at once; poll `GET /v1/runs/{id}` or resume it."""
    body.streaming, body.background, body.stream_tokens = False, True, False
    started = await svc.runs.start_group_run(
        tenant_id, group_id, body, streaming=False, idempotency_key=idempotency_key
    )
    return run_state(await svc.store.get_run(tenant_id, started.run.id))


@router.post("/messages/cancel")
async def cancel_group_runs(
    group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep, body: CancelRequest | None = None
) -> dict[str, Any]:
    """Cancel the group's active runs (or the listed ones); 409 when none is active."""
    await svc.store.get_group(tenant_id, group_id)
    return await svc.runs.cancel_active(tenant_id, "group", group_id, body.run_ids if body else None)


@router.get("/messages", response_model=list[LettaMessage])
async def list_group_messages(
    group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep, page: PageDep
) -> JSONResponse:
    """The group's history, newest first by default; `before`/`after` are message ids."""
    await svc.store.get_group(tenant_id, group_id)
    records = await svc.store.list_messages(tenant_id, page, group_id=group_id)
    return JSONResponse(within_budget([r.message for r in records], json_size))


@router.patch("/reset-messages")
async def reset_group_messages(group_id: GroupIdPath, svc: ServicesDep, tenant_id: TenantDep) -> dict[str, Any]:
    """Forget the group's history (409 while a run is active: it would write into the void)."""
    await svc.store.get_group(tenant_id, group_id)
    active = await svc.runs.active_runs(tenant_id, group_id=group_id)
    if active:
        raise Conflict(f"Group {group_id} has an active run ({active[0].id}).", run_id=active[0].id)
    deleted = await svc.store.delete_group_messages(tenant_id, group_id)
    return {"message": f"Reset {deleted} messages of group {group_id}"}
