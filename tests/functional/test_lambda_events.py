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
executor's job (`tests/workflow`). Live streaming goes through the Web Adapter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chorus.settings import get_settings
from chorus.store.sqlite import SQLiteStore
from support.dynamodb import TABLE, dynamodb_store, moto_dynamodb
from support.lambda_events import EXPECTED, ROOT, event, for_run, load_api_handler, seed, sse


@pytest.fixture(params=["sqlite", "dynamodb"])
def handler(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The Mangum handler on a seeded store: SQLite, or the deployed DynamoDB table on moto.

    The events carry the Function URL's `Host`. On Lambda a keyless server does not check it (the
    Function URL's auth decides who calls); here, outside Lambda, the allow-list names it."""
    monkeypatch.setenv("CHORUS_ALLOWED_HOSTS", "abcdefg.lambda-url.us-east-1.on.aws")
    if request.param == "sqlite":
        db = tmp_path / "lambda.db"
        asyncio.run(seed(SQLiteStore(db)))
        monkeypatch.setenv("CHORUS_DB_PATH", str(db))
        handler = load_api_handler()
        yield handler
        handler.close()
    else:
        with moto_dynamodb(monkeypatch) as client:
            asyncio.run(seed(dynamodb_store(client)))
            monkeypatch.setenv("CHORUS_STORE", "dynamodb")
            monkeypatch.setenv("CHORUS_TABLE_NAME", TABLE)
            handler = load_api_handler()
            yield handler
            handler.close()
    get_settings.cache_clear()


def test_every_event_file_has_an_expectation() -> None:
    assert sorted(p.name for p in (ROOT / "events").glob("api-*.json")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_event_through_mangum(handler: Any, name: str) -> None:
    if name.startswith("api-run-"):
        started = sse(handler(event("api-group-stream-background.json"), None))
        (run_id,) = {e["run_id"] for e in started if e.get("run_id")}
        result = handler(for_run(name, run_id), None)
    else:
        result = handler(event(name), None)
    assert result["statusCode"] < 500, result
    EXPECTED[name](result)


def test_resume_event_replays_the_background_run(handler: Any) -> None:
    started = sse(handler(event("api-group-stream-background.json"), None))
    (run_id,) = {e["run_id"] for e in started if e.get("run_id")}
    assert sse(handler(for_run("api-run-resume.json", run_id), None)) == started
