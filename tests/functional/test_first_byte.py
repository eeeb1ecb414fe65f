"""A token reaches the run's log while its step is still streaming, even when the provider's chunks come in a burst.

Providers often deliver several chunks in one read, and an SDK then hands them
over without suspending. The turn runner gives the loop a turn after each model
event it emitted, so the log's writer stores the first token (after which the
live stream sends it) before the model has produced the next ones; without that
turn nothing of the step was stored, or sent, until its last token. Counted,
not timed: the model itself looks in the SQLite file, with its own connection,
at how many events of the run are stored as it produces each token.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from fastapi import FastAPI

from chorus.llm.base import Finish, ModelEvent, ModelRequest, TextDelta
from chorus.llm.function_model import FunctionModel
from chorus.settings import Settings
from chorus.store.records import AgentRecord
from support import create_agent, create_group, payloads, serving, stream

BURST = 30


def stored_events(db: Path) -> int:
    with sqlite3.connect(db) as raw:
        row = raw.execute("SELECT COALESCE(MAX(last_seq), 0) FROM run_events").fetchone()
    return int(row[0])


async def test_the_first_token_is_stored_before_a_burst_of_chunks_ends(
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
        events = payloads(await stream(client, group["id"], {"input": "hi", "stream_tokens": True}))

    tokens = [e for e in events if e["message_type"] == "assistant_message"]
    assert len(tokens) == BURST
    before = seen[0]
    assert before == 0, "the run stored nothing before its first token"
    first_token_seq = tokens[0]["seq_id"]
    stored_while_streaming = [count for count in seen if count >= first_token_seq]
    assert stored_while_streaming, f"nothing of the step was stored until its burst ended: {seen}"
    assert seen.index(stored_while_streaming[0]) <= 2, f"the first token waited for later ones: {seen}"
