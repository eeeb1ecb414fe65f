"""Answering a send, for the group routes and the agent routes alike.

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
`Last-Event-ID`, then followed live; non-streaming: the same result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Header
from fastapi.responses import JSONResponse
from starlette.responses import Response

from chorus.api.deps import Services
from chorus.api.errors import RUN_ERROR_STATUS
from chorus.api.sse import sse_response
from chorus.api.views import letta_response, run_state
from chorus.runs.service import Started
from chorus.schemas.requests import MessageRequest
from chorus.schemas.resources import RunState

STREAM_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events, one LettaMessage per `data:`"}
}
IdempotencyKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=255)]
LastEventId = Annotated[int | None, Header(alias="Last-Event-ID", ge=0)]

Start = Callable[[MessageRequest, bool], Awaitable[Started]]
"""Starts the send's run (or finds the one its `Idempotency-Key` started): `start(body, streaming)`."""


def _stream(svc: Services, tenant_id: str, started: Started, include_pings: bool, after: int | None) -> Response:
    run = started.run
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
    run = await svc.runs.wait_terminal(tenant_id, started.run.id)
    events = await svc.runs.events_of(tenant_id, run.id)
    failure = next((e for e in events if e["message_type"] == "error_message"), None)
    if failure is not None:
        status = RUN_ERROR_STATUS.get(failure["error_type"], 500)
        return JSONResponse({"detail": failure["message"], "run_id": run.id}, status_code=status)
    return JSONResponse(letta_response(events))


async def answer_async(svc: Services, tenant_id: str, body: MessageRequest, start: Start) -> RunState:
    """`/messages/async`: start a background run and return it at once (poll `GET /v1/runs/{id}` or resume it)."""
    body.streaming, body.background, body.stream_tokens = False, True, False
    started = await start(body, False)
    return run_state(await svc.store.get_run(tenant_id, started.run.id))
