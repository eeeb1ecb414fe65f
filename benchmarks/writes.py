"""Store writes per run: what one streamed group run costs in store calls, on SQLite and on DynamoDB (moto).

Method: the app in-process (its lifespan running, httpx over ASGI: counts,
not time) on each store, the log flushed by size only (64 events, as a busy
writer does). One run per scenario: a round robin of 3 agents x 200 tokens
(`stream_tokens`, 600 token events) and a supervisor broadcasting to 4
workers x 50 tokens. Counted: the store port's write calls (`put_run`,
`update_run`, `append_events`, `commit_step`, `claim_group`,
`release_group`, …) on both adapters, and on DynamoDB the API calls that
write (`PutItem`, `UpdateItem`, `DeleteItem`, `TransactWriteItems`,
`BatchWriteItem`) counted by botocore event hooks. The bound the README
states: steps + ceil(tokens / 64) + 8.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

from chorus.api import create_app
from chorus.settings import Settings
from chorus.store.base import Store
from moto_dynamodb import moto_store

PORT_WRITES = {
    "put_run", "update_run", "commit_step", "append_events", "end_log", "claim_group", "release_group",
    "remember_idempotency_key", "forget_idempotency_key", "put_group", "put_agent",
}  # fmt: skip
API_WRITES = {"PutItem", "UpdateItem", "DeleteItem", "TransactWriteItems", "BatchWriteItem"}


class Counting:
    """The real adapter, its calls counted by name."""

    def __init__(self, inner: Store) -> None:
        self.inner, self.calls = inner, Counter[str]()

    def __getattr__(self, name: str) -> Any:
        target = getattr(self.inner, name)
        if not callable(target) or name in ("open", "close"):
            return target

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return await target(*args, **kwargs)

        return call


async def one_run(store: Store, manager: str, api_calls: Counter[str] | None) -> dict[str, Any]:
    counting = Counting(store)
    settings = Settings(db_path=Path("unused.db"), log_flush_interval_s=60.0)
    app = create_app(settings, store=counting)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1", timeout=120) as client:
            tokens = 200 if manager == "round_robin" else 50
            names = ["Ada", "Brook", "Cy"] if manager == "round_robin" else ["Lead", "W1", "W2", "W3", "W4"]
            ids = []
            for name in names:
                body = {"name": name, "metadata": {"scripted": {"tokens": tokens}}}
                ids.append((await client.post("/v1/agents", json=body)).json()["id"])
            config: dict[str, Any] = {"manager_type": manager}
            members = ids
            if manager == "supervisor":
                config["manager_agent_id"], members = ids[0], ids[1:]
            group = (await client.post("/v1/groups", json={"agent_ids": members, "manager_config": config})).json()
            counting.calls.clear()
            if api_calls is not None:
                api_calls.clear()
            body = {"input": "go", "stream_tokens": True, "background": True, "include_pings": False}
            text = (await client.post(f"/v1/groups/{group['id']}/messages/stream", json=body)).text
            events = [json.loads(line[6:]) for line in text.split("\n") if line.startswith("data: {")]
            run_id = events[0]["run_id"]
            await app.state.services.runs.wait_terminal("default", run_id)  # its last writes follow [DONE]
            steps = len(await store.list_steps("default", run_id))
    token_events = sum(1 for e in events if e["message_type"] in ("assistant_message", "tool_call_message"))
    port = {k: v for k, v in counting.calls.items() if k in PORT_WRITES}
    result: dict[str, Any] = {
        "events": len(events) + 1,
        "steps": steps,
        "store_writes": sum(port.values()),
        "by_method": dict(sorted(port.items())),
        "bound": steps + math.ceil(token_events / 64) + 8,
    }
    if api_calls is not None:
        writes = {k: v for k, v in api_calls.items() if k in API_WRITES}
        result["dynamodb_write_requests"] = sum(writes.values())
        result["dynamodb_by_operation"] = dict(sorted(writes.items()))
    return result


async def sqlite(manager: str) -> dict[str, Any]:
    from chorus.store.sqlite import SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        return await one_run(SQLiteStore(Path(tmp) / "writes.db"), manager, None)


async def dynamodb(manager: str) -> dict[str, Any]:
    with moto_store("chorus-writes") as (store, calls):
        return await one_run(store, manager, calls)


def main() -> None:
    report: dict[str, Any] = {"benchmark": "writes", "scenarios": {}}
    for manager, label in (("round_robin", "round robin 3 x 200 tokens"), ("supervisor", "supervisor + 4 x 50 tokens")):
        report["scenarios"][label] = {
            "sqlite": asyncio.run(sqlite(manager)),
            "dynamodb_moto": asyncio.run(dynamodb(manager)),
        }
    report["within_bound"] = all(
        s[a]["store_writes"] <= s[a]["bound"] for s in report["scenarios"].values() for a in ("sqlite", "dynamodb_moto")
    )
    report.update({"python": sys.version.split()[0], "cores": os.cpu_count()})
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
