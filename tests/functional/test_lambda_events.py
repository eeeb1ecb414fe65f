"""Every file in `events/` fed to its Lambda handler in-process, as `sam local invoke` would.

GIVEN the store seeded with the group the events name, WHEN an event is
invoked through `functions/api/handler.py` (Mangum, buffered), THEN the
documented status, headers and body come back. A new event file without an
expectation here fails the suite.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from chorus.settings import get_settings
from chorus.store.records import AgentRecord, GroupRecord
from chorus.store.sqlite import SQLiteStore
from support import parse_sse, payloads

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
GROUP = "group-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
AGENTS = ["agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e51", "agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e52"]
NOW = "2026-11-24T06:33:05.000000+00:00"


def _sse_ok(result: dict[str, Any]) -> None:
    assert result["headers"]["content-type"].startswith("text/event-stream")
    body = payloads(parse_sse(result["body"]))
    assert [e["name"] for e in body if e["message_type"] == "assistant_message"][-1] == "Brook"
    assert body[-2]["stop_reason"] == "end_turn"


def _json(status: int, check: Callable[[Any], None]) -> Callable[[dict[str, Any]], None]:
    def verify(result: dict[str, Any]) -> None:
        assert result["statusCode"] == status, result["body"]
        check(json.loads(result["body"]))

    return verify


EXPECTED: dict[str, Callable[[dict[str, Any]], None]] = {
    "api-health.json": _json(200, lambda b: b["status"] == "ok" or pytest.fail(str(b))),
    "api-create-agent.json": _json(200, lambda b: b["name"] == "Ada" or pytest.fail(str(b))),
    "api-group-stream.json": _sse_ok,
    "api-group-messages-streaming.json": _sse_ok,
    "api-group-messages.json": _json(
        200, lambda b: b["stop_reason"]["stop_reason"] == "end_turn" or pytest.fail(str(b))
    ),
    "api-invalid-body.json": _json(422, lambda b: "body.max_steps" in b["detail"] or pytest.fail(str(b))),
    "api-unknown-group.json": _json(404, lambda b: "Group not found" in b["detail"] or pytest.fail(str(b))),
    "api-bad-group-id.json": _json(422, lambda b: b["examples"] or pytest.fail(str(b))),
    "api-list-group-messages.json": _json(200, lambda b: isinstance(b, list) or pytest.fail(str(b))),
}


async def _seed(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    for agent_id, name in zip(AGENTS, ["Ada", "Brook"], strict=True):
        await store.put_agent(
            AgentRecord(
                tenant_id="default",
                id=agent_id,
                created_at=NOW,
                updated_at=NOW,
                name=name,
                system=f"You are {name}.",
                model="scripted/default",
            )
        )
    await store.put_group(
        GroupRecord(
            tenant_id="default",
            id=GROUP,
            created_at=NOW,
            updated_at=NOW,
            agent_ids=AGENTS,
            manager_config={"manager_type": "round_robin", "max_turns": None},
        )
    )
    await store.close()


@pytest.fixture
def handler(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    db = tmp_path / "lambda.db"
    asyncio.run(_seed(db))
    monkeypatch.setenv("CHORUS_DB_PATH", str(db))
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location("api_handler", ROOT / "functions/api/handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.handler
    get_settings.cache_clear()


def test_every_event_file_has_an_expectation() -> None:
    assert sorted(p.name for p in EVENTS.glob("api-*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_through_mangum(handler: Any, name: str) -> None:
    event = json.loads((EVENTS / name).read_text())
    result = handler(event, None)
    assert result["statusCode"] < 500, result
    EXPECTED[name](result)
