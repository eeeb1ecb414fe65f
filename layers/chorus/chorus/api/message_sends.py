"""The send routes, declared once for groups and agents (`add_send_routes`), and how a send is answered.

A send to a group (`/v1/groups/{id}/messages…`) and a send to an agent
(`/v1/agents/{id}/messages…`, its hidden one-member group) differ only in
how their run starts; the three ways to answer it live here once:

- `/messages/stream` always streams (Letta forces `streaming=true` there);
- `/messages` returns one `LettaResponse` unless the body says
  `streaming=true`; streaming-only options on a non-streaming request are a
  422 naming them;
- `/messages/async` starts a background run and returns it at once.

Beyond Letta: an `Idempotency-Key` header makes a retried send return the
run the first one started (streaming: replayed from the start, or after
`Last-Event-ID`, then followed live; non-streaming: the same result), and the body's
`multitask_strategy` says what a send to a busy group or agent does (see `chorus.runs.multitask`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from starlette.responses import Response

from chorus.api.deps import Services, ServicesDep, TenantDep, owner_id_path
from chorus.api.errors import RUN_ERROR_STATUS
from chorus.api.sse import sse_response
from chorus.api.views import letta_response, run_state
from chorus.errors import BadRequest
from chorus.runs.multitask import is_queued
from chorus.runs.starting import Started
from chorus.schemas.messages import LettaResponse
from chorus.schemas.requests import AsyncMessageRequest, MessageRequest
from chorus.schemas.resources import RunState

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, one LettaMessage per `data:`"}
}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0)]

Start = Callable[[MessageRequest, bool], Awaitable[Started]]
"""Starts the send's run (or finds the one its `Idempotency-Key` started): `start(body, streaming)`."""
StartFor = Callable[[Services, str, str, str | None], Start]
"""The `Start` of one send: `start_for(services, tenant_id, owner_id, idempotency_key)`."""


def _stream(svc: Services, tenant_id: str, started: Started, include_pings: bool, after: int | None) -> Response:
    run = started.run
    if is_queued(run) and not started.replay:
        waiting = svc.runs.multitask.stream(
            run, lambda: svc.runs.follow(tenant_id, run.id, include_pings=include_pings), include_pings=include_pings
        )
        if run.background:
            return sse_response(waiting)
        return sse_response(waiting, on_disconnect=lambda: svc.runs.cancel_soon(tenant_id, run))
    frames = svc.runs.follow(tenant_id, run.id, after or 0, include_pings=include_pings)
    if run.background or started.replay:
        return sse_response(frames)

    def cancel_orphaned_run() -> None:
        svc.runs.cancel_local(run.id)

    return sse_response(frames, on_disconnect=cancel_orphaned_run)


async def answer_stream(
    svc: Services, tenant_id: str, body: MessageRequest, start: Start, last_event_id: int | None
) -> Response:
    """`/messages/stream`: start the run and stream it."""
    body.streaming = True
    started = await start(body, True)
    return _stream(svc, tenant_id, started, body.include_pings, last_event_id if started.replay else None)


async def answer_send(
    svc: Services, tenant_id: str, body: MessageRequest, start: Start, last_event_id: int | None
) -> Response:
    """`/messages`: the whole response once the run ends, or its stream with `streaming=true`."""
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
    started = await start(body, body.streaming)
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


async def answer_async(svc: Services, tenant_id: str, body: AsyncMessageRequest, start: Start) -> RunState:
    """`/messages/async`: start a background run and return it at once (poll `GET /v1/runs/{id}` or resume it).

    `callback_url` is refused: the server would POST to an address the tenant chose (a way into
    whatever network the server sits in); poll the run or resume its stream instead."""
    if body.callback_url is not None:
        raise BadRequest("callback_url is not supported: poll GET /v1/runs/{run_id} or resume the run's stream.")
    body.streaming, body.background, body.stream_tokens = False, True, False
    started = await start(body, False)
    return run_state(started.run)  # as accepted, as Letta answers: its progress is the poller's to read


def add_send_routes(router: APIRouter, owner: Literal["group", "agent"], start_for: StartFor) -> None:
    """Declare `/messages/stream`, `/messages` and `/messages/async` on the router of `/v1/<owner>s/{<owner>_id}`.

    The owner's id is one keyword parameter (`owner_id`, read from the path's `{<owner>_id}`), so the
    three routes are written once for groups and agents; only their names and descriptions differ."""
    whose = "the group's responses" if owner == "group" else "the agent's response"

    async def streaming(
        *,
        owner_id: str = owner_id_path(owner),
        body: MessageRequest,
        svc: ServicesDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
        last_event_id: LastEventId = None,
    ) -> Response:
        return await answer_stream(
            svc, tenant_id, body, start_for(svc, tenant_id, owner_id, idempotency_key), last_event_id
        )

    async def whole(
        *,
        owner_id: str = owner_id_path(owner),
        body: MessageRequest,
        svc: ServicesDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
        last_event_id: LastEventId = None,
    ) -> Response:
        return await answer_send(
            svc, tenant_id, body, start_for(svc, tenant_id, owner_id, idempotency_key), last_event_id
        )

    async def background(
        *,
        owner_id: str = owner_id_path(owner),
        body: AsyncMessageRequest,
        svc: ServicesDep,
        tenant_id: TenantDep,
        idempotency_key: IdempotencyKey = None,
    ) -> RunState:
        return await answer_async(svc, tenant_id, body, start_for(svc, tenant_id, owner_id, idempotency_key))

    router.add_api_route(
        "/messages/stream",
        streaming,
        response_model=None,
        responses=STREAM_RESPONSES,
        name=f"send_{owner}_message_streaming",
        description=f"Process a user message and stream every step of {whose} (and tokens with `stream_tokens`).",
        methods=["POST"],
    )
    router.add_api_route(
        "/messages",
        whole,
        response_model=LettaResponse,
        responses=STREAM_RESPONSES,
        name=f"send_{owner}_message",
        description=f"Process a user message and return {whose} whole (or stream it with `streaming=true`).",
        methods=["POST"],
    )
    router.add_api_route(
        "/messages/async",
        background,
        response_model=RunState,
        name=f"send_{owner}_message_async",
        description="Start the run in the background and return it at once; poll `GET /v1/runs/{id}` or resume it.",
        methods=["POST"],
    )
