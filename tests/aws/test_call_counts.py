"""How many DynamoDB calls a run costs, counted with botocore's event hooks (counts, never time)."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
from fastapi import FastAPI

from chorus.store.base import Store
from support import create_agent, create_group, parse_sse, payloads
from support.dynamodb import count_calls

LOCAL = "http://127.0.0.1"
WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


async def _app(make_app: Callable[..., FastAPI]) -> FastAPI:
    # flushes by size only (64 events), as a busy writer does; the timer never fires within a test
    return make_app(settings={"log_flush_interval_s": 60.0})


async def test_a_three_agent_run_of_200_tokens_each_costs_steps_plus_tokens_over_64_writes(
    make_app: Callable[..., FastAPI], dynamodb: Any
) -> None:
    app = await _app(make_app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            agents = [await create_agent(client, name, tokens=200) for name in ("Ada", "Brook", "Cy")]
            group = await create_group(client, [a["id"] for a in agents])
            calls = count_calls(dynamodb)
            body = {"input": "go", "stream_tokens": True, "background": True}
            live = payloads(parse_sse((await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)).text))
            run_id = live[0]["run_id"]
            await app.state.services.runs.wait_terminal("default", run_id)  # its last writes follow [DONE]
            writes = sum(calls[op] for op in WRITES)
            store: Store = app.state.services.store
            steps = len(await store.list_steps("default", run_id))
            tokens = sum(1 for e in live if e["message_type"] == "assistant_message")
    assert tokens == 600 and steps == 4  # the input, then one step per agent
    bound = steps + math.ceil(tokens / 64) + 8  # run record, lease, claim, release, finish
    assert writes <= bound, f"{writes} writes > {bound}: {dict(calls)}"
    print(f"\n3 agents x 200 tokens: {writes} writes ({steps} steps, {tokens} tokens): {dict(calls)}")


async def test_resuming_10000_events_takes_one_query_per_batch(make_app: Callable[..., FastAPI], dynamodb: Any) -> None:
    app = await _app(make_app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as client:
            agent = await create_agent(client, "Long", tokens=9_998)
            group = await create_group(client, [agent["id"]])
            body = {"input": "go", "stream_tokens": True, "background": True}
            live = parse_sse((await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)).text)
            run_id = payloads(live)[0]["run_id"]
            await app.state.services.runs.wait_terminal("default", run_id)  # nothing else calls DynamoDB now
            events = await app.state.services.store.last_seq("default", run_id)
            assert events >= 10_000
            calls = count_calls(dynamodb)
            for batch in (1_000, 500):
                calls.clear()
                resumed = await client.post(
                    f"/v1/runs/{run_id}/stream", json={"starting_after": 0, "batch_size": batch}
                )
                assert [e.data for e in parse_sse(resumed.text)] == [e.data for e in live]
                bound = math.ceil(events / batch) + 1
                assert calls["Query"] <= bound, f"{calls['Query']} queries > {bound} for {events} events"
                print(f"\nresume of {events} events, batch {batch}: {dict(calls)}")


async def _listing_reads(client: httpx.AsyncClient, dynamodb: Any, agents: int, each: int) -> Counter[str]:
    """The DynamoDB reads of `GET /v1/agents` over `agents` new agents with `each` blocks and tools apiece."""
    for a in range(agents):
        tools = []
        for t in range(each):
            source = f'def tool_{agents}_{a}_{t}() -> str:\n    """Say x."""\n    return \'x\'\n'
            created = await client.post("/v1/tools", json={"source_code": source})
            assert created.status_code == 200, created.text
            tools.append(created.json())
        body = {
            "name": f"agent-{a}",
            "model": "scripted/default",
            "memory_blocks": [{"label": f"notes-{b}", "value": "x"} for b in range(each)],
            "tool_ids": [t["id"] for t in tools],
        }
        assert (await client.post("/v1/agents", json=body)).status_code == 200
    calls = count_calls(dynamodb)
    listed = (await client.get("/v1/agents", params={"limit": 100, "order": "desc"})).json()
    assert [len(a["blocks"]) for a in listed[:agents]] == [len(a["tools"]) for a in listed[:agents]] == [each] * agents
    return Counter({op: n for op, n in calls.items() if op in {"GetItem", "BatchGetItem", "Query"}})


async def test_listing_agents_reads_their_blocks_and_tools_in_one_batch_each(
    make_app: Callable[..., FastAPI], dynamodb: Any
) -> None:
    """No N+1: the page of agents is one `Query`, their blocks and tools one `BatchGetItem` each."""
    app = await _app(make_app)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url=LOCAL) as client:
        few = await _listing_reads(client, dynamodb, agents=2, each=1)
        many = await _listing_reads(client, dynamodb, agents=8, each=5)  # 10 agents, 42 blocks
    assert few == many == Counter({"Query": 1, "BatchGetItem": 2}), (few, many)
