"""The `events/` fixtures, the store they expect and what each must answer.

Shared by the in-process handler tests (`tests/functional/test_lambda_events.py`) and the
`sam build` output test (`tests/aws/test_sam_build.py`), which runs this module under the
build's own Python 3.12 with only the build on its path: so it imports nothing but `chorus`
and the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"
GROUP = "group-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
AGENTS = ["agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e51", "agent-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e52"]
NOW = "2026-11-24T06:33:05.000000+00:00"
RUN_PLACEHOLDER = "run-5b0c3b0e-6f7a-4d2b-9c1e-0a1b2c3d4e5f"
"""The run id in `api-run-*.json`: the test substitutes a run it started."""

Check = Callable[[dict[str, Any]], None]


def _fail(reason: Any) -> bool:
    raise AssertionError(str(reason))


def sse_payloads(text: str) -> list[dict[str, Any]]:
    """The JSON payloads of an SSE body (`[DONE]` and comments left out)."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            out.append(json.loads(line[6:]))
    return out


def sse(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The events of a successful streamed group run (Ada then Brook, ending `end_turn`)."""
    assert result["statusCode"] == 200, result["body"]
    assert result["headers"]["content-type"].startswith("text/event-stream")
    body = sse_payloads(result["body"])
    assert [e["name"] for e in body if e["message_type"] == "assistant_message"][-1] == "Brook"
    assert body[-2]["stop_reason"] == "end_turn"
    return body


def _sse_ok(result: dict[str, Any]) -> None:
    sse(result)


def _json(status: int, check: Callable[[Any], object]) -> Check:
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


EXPECTED: dict[str, Check] = {
    "api-health.json": _json(200, lambda b: b["status"] == "ok" or _fail(b)),
    "api-create-agent.json": _json(200, lambda b: b["name"] == "Ada" or _fail(b)),
    "api-group-stream.json": _sse_ok,
    "api-group-messages-streaming.json": _sse_ok,
    "api-group-messages.json": _json(200, lambda b: b["stop_reason"]["stop_reason"] == "end_turn" or _fail(b)),
    "api-invalid-body.json": _json(422, lambda b: "body.max_steps" in b["detail"] or _fail(b)),
    "api-unknown-group.json": _json(404, lambda b: "Group not found" in b["detail"] or _fail(b)),
    "api-bad-group-id.json": _json(422, lambda b: b["examples"] or _fail(b)),
    "api-list-group-messages.json": _json(200, lambda b: isinstance(b, list) or _fail(b)),
    "api-group-stream-background.json": _sse_ok,
    "api-group-messages-async.json": _json(200, _started),
    "api-run-resume.json": _sse_ok,
    "api-run-poll.json": _json(200, _polled),
}
"""What each `api-*.json` event must answer through the API function's buffered handler."""


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / name).read_text())
    return loaded


def for_run(name: str, run_id: str) -> dict[str, Any]:
    """An `api-run-*.json` event naming `run_id` instead of the placeholder."""
    replaced: dict[str, Any] = json.loads(json.dumps(event(name)).replace(RUN_PLACEHOLDER, run_id))
    return replaced


def invoke_all(handler: Callable[[dict[str, Any], Any], dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Every `api-*.json` event through `handler`; a run event names a run the background stream started."""
    results = {}
    for name in sorted(EXPECTED):
        if name.startswith("api-run-"):
            started = sse(handler(event("api-group-stream-background.json"), None))
            (run_id,) = {e["run_id"] for e in started if e.get("run_id")}
            results[name] = handler(for_run(name, run_id), None)
        else:
            results[name] = handler(event(name), None)
    return results


def load_api_handler(path: Path = ROOT / "functions" / "api" / "handler.py") -> Any:
    """The API function's buffered handler, built afresh under this process's environment."""
    import importlib.util

    from chorus.api.application import shared_app
    from chorus.settings import get_settings

    get_settings.cache_clear()
    shared_app.cache_clear()  # the handler serves `chorus.api:app`, built once per process otherwise
    spec = importlib.util.spec_from_file_location("api_handler", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.handler


async def seed(store: Store) -> None:
    """The agents and group the events name."""
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
