"""Every file in `events/` fed to its Lambda handler in-process, as `sam local invoke` would.

GIVEN the store (SQLite, and DynamoDB on moto as deployed) seeded with the
group the events name, WHEN an event is invoked through
`functions/api/handler.py` (Mangum, buffered), THEN the documented status,
headers and body come back. A new event file without an expectation here
fails the suite.

The events are real Function URL payloads. Those naming a run
(`api-run-*.json`) carry a placeholder run id, replaced by the id of a run
the test first starts with `api-group-stream-background.json`.

Under Mangum every invocation runs the app's lifespan, so a run started by
`/messages/async` lives only as long as its invocation (the response still
returns it at once); executing it across invocations is the Step Functions
executor's job (issue 8). Live streaming goes through the Web Adapter.
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
from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord
from chorus.store.sqlite import SQLiteStore
from dynamodb_support import TABLE, dynamodb_store, moto_dynamodb
from support import parse_sse, payloads

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
GROUP = "group-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
AGENTS = ["agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e51", "agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e52"]
NOW = "2026-11-24T06:33:05.000000+00:00"
RUN_PLACEHOLDER = "run-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
"""The run id in `api-run-*.json`: the test substitutes a run it started."""


def _sse(result: dict[str, Any]) -> list[dict[str, Any]]:
    assert result["statusCode"] == 200, result["body"]
    assert result["headers"]["content-type"].startswith("text/event-stream")
    body = payloads(parse_sse(result["body"]))
    assert [e["name"] for e in body if e["message_type"] == "assistant_message"][-1] == "Brook"
    assert body[-2]["stop_reason"] == "end_turn"
    return body


def _sse_ok(result: dict[str, Any]) -> None:
    _sse(result)


def _json(status: int, check: Callable[[Any], None]) -> Callable[[dict[str, Any]], None]:
    def verify(result: dict[str, Any]) -> None:
        assert result["statusCode"] == status, result["body"]
        assert result["headers"]["content-type"] == "application/json"
        check(json.loads(result["body"]))

    return verify


def _started(b: dict[str, Any]) -> None:
    assert b["id"].startswith("run-") and b["group_id"] == GROUP, b
    assert b["background"] is True and b["status"] in ("created", "running"), b


def _polled(b: dict[str, Any]) -> None:
    assert b["status"] == "completed" and b["stop_reason"] == "end_turn" and b["background"] is True, b


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
    "api-group-stream-background.json": _sse_ok,
    "api-group-messages-async.json": _json(200, _started),
    "api-run-resume.json": _sse_ok,
    "api-run-poll.json": _json(200, _polled),
}


async def _seed(store: Store) -> None:
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


def _load_handler() -> Any:
    get_settings.cache_clear()
    spec = importlib.util.spec_from_file_location("api_handler", ROOT / "functions/api/handler.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


def _event(name: str) -> dict[str, Any]:
    event: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return event


@pytest.fixture(params=["sqlite", "dynamodb"])
def handler(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Mangum handler on a seeded store: SQLite, or the deployed DynamoDB table on moto.

    The events carry the Function URL's `Host`. On Lambda a keyless server does not check it (the
    Function URL's auth decides who calls); here, outside Lambda, the allow-list names it."""
    monkeypatch.setenv("CHORUS_ALLOWED_HOSTS", "abcdefg.lambda-url.us-east-1.on.aws")
    if request.param == "sqlite":
        db = tmp_path / "lambda.db"
        asyncio.run(_seed(SQLiteStore(db)))
        monkeypatch.setenv("CHORUS_DB_PATH", str(db))
        handler = _load_handler()
        yield handler
        handler.close()
    else:
        with moto_dynamodb(monkeypatch) as client:
            asyncio.run(_seed(dynamodb_store(client)))
            monkeypatch.setenv("CHORUS_STORE", "dynamodb")
            monkeypatch.setenv("CHORUS_TABLE_NAME", TABLE)
            handler = _load_handler()
            yield handler
            handler.close()
    get_settings.cache_clear()


def test_every_event_file_has_an_expectation() -> None:
    assert sorted(p.name for p in EVENTS.glob("api-*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_through_mangum(handler: Any, name: str) -> None:
    event = _event(name)
    if name.startswith("api-run-"):
        started = _sse(handler(_event("api-group-stream-background.json"), None))
        (run_id,) = {e["run_id"] for e in started if e.get("run_id")}
        event = json.loads(json.dumps(event).replace(RUN_PLACEHOLDER, run_id))
    result = handler(event, None)
    assert result["statusCode"] < 500, result
    EXPECTED[name](result)


def test_resume_event_replays_the_background_run(handler: Any) -> None:
    started = _sse(handler(_event("api-group-stream-background.json"), None))
    (run_id,) = {e["run_id"] for e in started if e.get("run_id")}
    resumed = _sse(
        handler(json.loads(json.dumps(_event("api-run-resume.json")).replace(RUN_PLACEHOLDER, run_id)), None)
    )
    assert resumed == started
