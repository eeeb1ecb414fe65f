"""Contexts reused between steps send every agent exactly what a fresh render would, on both stores.

Through the ASGI app, a round robin (one agent reasons) and a supervisor (its
broadcasts are tool calls and returns) talk far past a small window, so their
histories hold summaries, tool exchanges and several agents' words. The
process's context cache is replaced by one that, for every step, also builds the
request the uncached way (`in_context`, `build_request`, `count_request`) from
the same history and compares it with the cached one, field for field.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from dataclasses import fields as fields_of
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from chorus.engine import context_cache
from chorus.engine.compaction import as_context, in_context
from chorus.engine.context import Frame, build_request
from chorus.engine.context_cache import ContextCache, Measured, Seen
from chorus.tokens import count_request
from support import create_group, payloads, serving, stream

WINDOW = 600
SENDS = {"sqlite": 30, "dynamodb": 10}
"""Sends to each group (fewer on moto, whose DynamoDB is slow): a summary every few."""


@dataclass(frozen=True)
class CheckedSeen(Seen):
    cache: CheckingCache
    history: Sequence[dict[str, Any]]
    hidden: Collection[str]
    limit: int | None

    def request(self, frame: Frame) -> Measured:
        measured = super().request(frame)
        view = in_context(self.history)
        summary = as_context(view.summary) if view.summary is not None else None
        fields = {f.name: getattr(frame, f.name) for f in fields_of(frame)}
        fresh = build_request(
            **fields, history=view.messages, hidden_senders=self.hidden, context_limit=self.limit, summary=summary
        )
        self.cache.checked.append(fresh)
        if measured.request != fresh or measured.tokens != count_request(fresh):
            self.cache.differences.append((measured.request, fresh))
        return measured


class CheckingCache(ContextCache):
    def __init__(self) -> None:
        super().__init__()
        self.checked: list[Any] = []
        self.differences: list[tuple[Any, Any]] = []

    def view(
        self,
        tenant_id: str,
        agent_id: str,
        history: Sequence[dict[str, Any]],
        hidden_senders: Collection[str] = (),
        context_limit: int | None = None,
    ) -> Seen:
        seen = super().view(tenant_id, agent_id, history, hidden_senders, context_limit)
        return CheckedSeen(seen.view, seen.messages, seen.tokens, self, list(history), hidden_senders, context_limit)


@pytest.fixture
def cache(monkeypatch: pytest.MonkeyPatch) -> CheckingCache:
    checking = CheckingCache()
    monkeypatch.setattr(context_cache, "_shared", checking)
    return checking


@pytest.fixture
async def client(make_app: Callable[..., FastAPI], cache: CheckingCache) -> AsyncIterator[httpx.AsyncClient]:
    async with serving(make_app()) as c:
        yield c


async def _agent(
    client: httpx.AsyncClient, name: str, script: dict[str, Any] | None = None, window: int | None = WINDOW
) -> str:
    body: dict[str, Any] = {"name": name, "system": f"You are {name}.", "model": "scripted/default"}
    if window is not None:
        body["context_window_limit"] = window
    response = await client.post("/v1/agents", json={**body, "metadata": {"scripted": script or {}}})
    assert response.status_code == 200, response.text
    agent_id: str = response.json()["id"]
    return agent_id


@pytest.mark.both_stores
async def test_every_step_is_sent_what_a_fresh_render_gives(
    client: httpx.AsyncClient, cache: CheckingCache, store_kind: str
) -> None:
    talkers = [await _agent(client, "Ada", {"reasoning": "Let me think."}), await _agent(client, "Brook")]
    talkers.append(await _agent(client, "Cyd"))
    round_robin = await create_group(client, talkers)
    boss = await _agent(client, "Boss")
    workers = [await _agent(client, "Dee"), await _agent(client, "Eve")]
    supervised = await create_group(client, workers, {"manager_type": "supervisor", "manager_agent_id": boss})
    for i in range(SENDS[store_kind]):
        for group in (round_robin, supervised):
            events = payloads(await stream(client, group["id"], {"input": f"message {i}: a task to talk over"}))
            assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]

    assert cache.differences == []
    sent = cache.checked
    assert len(sent) >= 7 * SENDS[store_kind]
    assert any(r.messages and r.messages[0].content.startswith("[Summary of") for r in sent), "with summaries"
    assert any(m.tool_calls for r in sent for m in r.messages), "with tool calls"
    assert any(m.role == "tool" for r in sent for m in r.messages), "and their returns"


@pytest.mark.both_stores
async def test_a_step_renders_only_what_is_new_to_its_agent(
    client: httpx.AsyncClient, cache: CheckingCache, store_kind: str
) -> None:
    agents = [await _agent(client, name, window=None) for name in ("Ada", "Brook", "Cyd")]
    group = await create_group(client, agents)
    for i in range({"sqlite": 40, "dynamodb": 28}[store_kind]):
        before, steps = cache.rendered_total(), len(cache.checked)
        events = payloads(await stream(client, group["id"], {"input": f"message {i}: a task to talk over"}))
        assert [e["stop_reason"] for e in events if e["message_type"] == "stop_reason"] == ["end_turn"]
        assert len(cache.checked) - steps == 3
        in_context = sum(len(r.messages) for r in cache.checked[steps:])
        assert in_context >= 3 * 4 * i, "each step's context holds the whole conversation"
        assert cache.rendered_total() - before <= 3 * 5, "each agent rendered the messages since its last step"
    assert cache.differences == []
