"""Helpers shared by the test suites: an SSE parser and API shortcuts."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
from fastapi import FastAPI
from pydantic import TypeAdapter

from chorus.llm.base import Model, ModelEvent, ModelRequest
from chorus.llm.function_model import FunctionModel
from chorus.llm.resolve import resolve_model
from chorus.schemas.messages import StreamEvent
from chorus.store.records import AgentRecord

STREAM_EVENT: TypeAdapter[StreamEvent] = TypeAdapter(StreamEvent)


@dataclass
class SSE:
    data: str
    id: str | None = None
    event: str | None = None

    @property
    def json(self) -> dict[str, Any]:
        value: dict[str, Any] = json.loads(self.data)
        return value


def parse_sse(text: str) -> list[SSE]:
    """Parse a whole SSE body into events (the standard's field rules, enough for our frames)."""
    out = []
    for block in text.split("\n\n"):
        if not block.strip():
            continue
        fields: dict[str, list[str]] = {}
        for line in block.split("\n"):
            name, _, value = line.partition(":")
            fields.setdefault(name, []).append(value.removeprefix(" "))
        out.append(SSE("\n".join(fields.get("data", [])), _first(fields.get("id")), _first(fields.get("event"))))
    return out


def _first(values: list[str] | None) -> str | None:
    return values[0] if values else None


def payloads(events: list[SSE]) -> list[dict[str, Any]]:
    """The JSON events before `[DONE]`, each validated against the wire schema."""
    assert events, "empty stream"
    assert events[-1].data == "[DONE]", f"stream did not end with [DONE]: {events[-1]}"
    out = []
    for event in events[:-1]:
        body = event.json
        STREAM_EVENT.validate_python(body)
        out.append(body)
    return out


async def create_agent(client: httpx.AsyncClient, name: str, **scripted: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "system": f"You are {name}.", "model": "scripted/default"}
    if scripted:
        body["metadata"] = {"scripted": scripted}
    response = await client.post("/v1/agents", json=body)
    assert response.status_code == 200, response.text
    agent: dict[str, Any] = response.json()
    return agent


async def create_group(
    client: httpx.AsyncClient, agent_ids: list[str], manager_config: dict[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"agent_ids": agent_ids, "description": "test group"}
    if manager_config is not None:
        body["manager_config"] = manager_config
    response = await client.post("/v1/groups", json=body)
    assert response.status_code == 200, response.text
    group: dict[str, Any] = response.json()
    return group


async def stream(client: httpx.AsyncClient, group_id: str, body: dict[str, Any]) -> list[SSE]:
    response = await client.post(f"/v1/groups/{group_id}/messages/stream", json=body)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    return parse_sse(response.text)


def replies(tool_return: str) -> list[dict[str, Any]]:
    """The entries of a broadcast's tool return: a JSON list of JSON strings, as Letta returns it."""
    entries = json.loads(tool_return)
    assert all(isinstance(e, str) for e in entries), "each reply is a JSON string, as in Letta"
    return [json.loads(e) for e in entries]


class Recorder:
    """A model resolver that keeps every request each agent was sent."""

    def __init__(self) -> None:
        self.requests: dict[str, list[ModelRequest]] = {}

    def __call__(self, agent: AgentRecord) -> Model:
        model = resolve_model(agent.model, agent.metadata)
        requests = self.requests.setdefault(agent.name, [])

        def record(request: ModelRequest) -> AsyncIterator[ModelEvent]:
            requests.append(request)
            return model.stream(request)

        return FunctionModel(record, handle=model.handle)


LOOPBACK = "http://127.0.0.1"


@contextlib.asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app` in-process, its lifespan running (ASGITransport buffers bodies: no timing)."""
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=LOOPBACK) as client:
        yield client
