"""A token leaves while its step is still streaming, even when the provider's chunks come in a burst.

Providers often deliver several chunks in one read, and an SDK then hands them
over without suspending. The turn runner gives the loop a turn after each model
event it emitted, so a background run's log writer stores the first token (after
which the live stream sends it), and a foreground run's stream sends it, before
the model has produced the next ones; without that turn nothing of the step was
stored, or sent, until its last token. Counted, not timed: the model itself
looks, as it produces each token, at how many events of the run the SQLite file
holds (with its own connection), or at how many token frames the app has sent.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chorus.llm.base import Finish, ModelEvent, ModelRequest, TextDelta
from chorus.llm.function_model import FunctionModel
from chorus.settings import Settings
from chorus.store.records import AgentRecord
from support import LOOPBACK, create_agent, create_group, payloads, serving, stream

BURST = 30


def stored_events(db: Path) -> int:
    with sqlite3.connect(db) as raw:
        row = raw.execute("SELECT COALESCE(MAX(last_seq), 0) FROM run_events").fetchone()
    return int(row[0])


async def test_a_background_runs_first_token_is_stored_before_a_burst_of_chunks_ends(
    make_app: Callable[..., FastAPI], settings: Settings
) -> None:
    seen: list[int] = []
    """Events of the run in the store as the model produced each of its tokens."""

    async def burst(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        for i in range(BURST):
            seen.append(stored_events(settings.db_path))
            yield TextDelta(f" t{i}")  # no await between chunks: a burst read at once
        yield Finish()

    def resolve(agent: AgentRecord) -> FunctionModel:
        return FunctionModel(burst)

    async with serving(make_app(resolver=resolve)) as client:
        agent = await create_agent(client, "solo")
        group = await create_group(client, [agent["id"]])
        body = {"input": "hi", "stream_tokens": True, "background": True}
        events = payloads(await stream(client, group["id"], body))

    tokens = [e for e in events if e["message_type"] == "assistant_message"]
    assert len(tokens) == BURST
    before = seen[0]
    assert before == 0, "the run stored nothing before its first token"
    first_token_seq = tokens[0]["seq_id"]
    stored_while_streaming = [count for count in seen if count >= first_token_seq]
    assert stored_while_streaming, f"nothing of the step was stored until its burst ended: {seen}"
    assert seen.index(stored_while_streaming[0]) <= 2, f"the first token waited for later ones: {seen}"


class SentTokens:
    """The app, counting the response bodies it sends that carry a token (a spy on the ASGI `send`)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def counted(message: Message) -> None:
            if message["type"] == "http.response.body" and b'"assistant_message"' in message.get("body", b""):
                self.count += 1
            await send(message)

        await self.app(scope, receive, counted)


async def test_a_foreground_runs_first_token_is_sent_before_a_burst_of_chunks_ends(
    make_app: Callable[..., FastAPI], settings: Settings
) -> None:
    """A foreground stream does not wait on the store (it cannot be resumed): its first token is sent
    at once, and the store holds none of the step's tokens until the step commits."""
    sent_seen: list[int] = []
    stored_seen: list[int] = []

    async def burst(request: ModelRequest) -> AsyncIterator[ModelEvent]:
        for i in range(BURST):
            sent_seen.append(spy.count)
            stored_seen.append(stored_events(settings.db_path))
            yield TextDelta(f" t{i}")
        yield Finish()

    def resolve(agent: AgentRecord) -> FunctionModel:
        return FunctionModel(burst)

    app = make_app(resolver=resolve)
    spy = SentTokens(app)
    transport = httpx.ASGITransport(app=spy)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=LOOPBACK) as client:
        agent = await create_agent(client, "solo")
        group = await create_group(client, [agent["id"]])
        events = payloads(await stream(client, group["id"], {"input": "hi", "stream_tokens": True}))

    tokens = [e for e in events if e["message_type"] == "assistant_message"]
    assert len(tokens) == BURST
    first_sent = next((i for i, count in enumerate(sent_seen) if count), None)
    assert first_sent is not None, f"nothing of the step was sent until its burst ended: {sent_seen}"
    # a frame passes three tasks on its way out (the log's reader, the response, the transport): a turn each
    assert first_sent <= 3, f"the first token waited for later ones: {sent_seen}"
    assert max(stored_seen) < tokens[0]["seq_id"], f"a token was stored one by one: {stored_seen}"
