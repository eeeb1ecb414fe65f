"""What importing a Lambda entry module pulls in, in fresh interpreters (no timing: benchmarks/importtime.py).

The API handler's cold import is mostly FastAPI's; what is ours stays small
by importing provider SDKs, boto3 and Powertools only where they are used
(model resolution, the store and executor the settings choose, the Lambda
runtime), by including route modules on the first request that needs them
and importing the settings, store records and run machinery when the app
starts (`chorus.api.lazy_routes`), by building request bodies and store
records on first use (`defer_build`), and by answering `<collection>/` without
a second route per method. The task functions (plan, step, finish) import no
web stack at all, and with tracing off nothing imports the OpenTelemetry SDK.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
LAMBDA_ENV = {
    "AWS_LAMBDA_FUNCTION_NAME": "chorus-test",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
    "CHORUS_STORE": "dynamodb",
    "CHORUS_EXECUTOR": "stepfunctions",
    "CHORUS_STATE_MACHINE_ARN": "arn:aws:states:us-east-1:123456789012:stateMachine:chorus-run",
}
PROVIDER_SDKS = {"openai", "anthropic"}
WEB_STACK = {"fastapi", "starlette", "mangum", "uvicorn"}
LAZY = ("chorus.api.routes.", "chorus.runs", "chorus.schemas", "chorus.engine", "chorus.llm", "chorus.store.records")
"""What the API handler imports only when the app starts or a request needs it (`chorus.api.lazy_routes`)."""
TRACING = {"opentelemetry.sdk", "opentelemetry.exporter", "chorus.otel"}
"""Imported only when tracing is on (`chorus.tracing`); FastAPI itself imports the OpenTelemetry API."""

_PROBE = """
import json, sys
sys.path.insert(0, sys.argv[1])
import handler
facts = {"modules": sorted({name.split(".")[0] for name in sys.modules})}
traced = [name for name in sys.modules if name.startswith(("opentelemetry.", "chorus.otel"))]
facts["tracing"] = sorted({".".join(name.split(".")[:2]) for name in traced})
facts["chorus"] = sorted(name for name in sys.modules if name.startswith("chorus."))
if "chorus.api.application" in sys.modules:
    import importlib
    from chorus.api import lazy_routes, routes
    for name in lazy_routes.ALL:
        importlib.import_module(f"chorus.api.routes.{name}")
    from chorus.schemas import requests, resources, tools
    from chorus.store import records
    bodies = [requests.MessageRequest, resources.AgentCreate, resources.GroupCreate, resources.BlockCreate,
              tools.ToolCreate, records.AgentRecord, records.RunRecord, records.MessageRecord]
    facts["built_at_import"] = [model.__name__ for model in bodies if model.__pydantic_complete__]
    facts["slashed_routes"] = [
        route.path
        for name in ("agents", "agent_memory", "agent_tools", "blocks", "tools", "groups", "group_messages", "runs",
                     "health")
        for route in getattr(routes, name).router.routes
        if route.path.endswith("/")
    ]
print(json.dumps(facts))
"""


def probe(function: str, env: dict[str, str]) -> dict[str, Any]:
    """Import `functions/<function>/handler.py` in a fresh interpreter with only `env` (no CHORUS_* of ours)."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"), **env}
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(FUNCTIONS / function)],
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    facts: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return facts


def test_the_api_handler_imports_no_sdk_boto3_or_powertools_locally() -> None:
    facts = probe("api", {})
    imported = set(facts["modules"])
    assert not imported & (PROVIDER_SDKS | {"boto3", "botocore", "aws_lambda_powertools", "aws_xray_sdk"})
    assert not set(facts["tracing"]) & TRACING, "tracing is off: no OpenTelemetry SDK"
    assert not [m for m in facts["chorus"] if m.startswith(LAZY)], "routes and run machinery load on first use"
    assert facts["built_at_import"] == [], "request bodies and store records are built on first use"
    assert facts["slashed_routes"] == [], "`<collection>/` is served by chorus.api.slashes, not by a second route"


def test_the_api_handler_on_lambda_imports_no_powertools_sdk_or_boto3() -> None:
    facts = probe("api", LAMBDA_ENV)
    imported = set(facts["modules"])
    assert "aws_lambda_powertools" not in imported, "the Logger is set up when the app starts, before it logs"
    assert not imported & (PROVIDER_SDKS | {"boto3", "aws_xray_sdk"}), "store and executor are built at start-up"
    assert not set(facts["tracing"]) & TRACING
    assert not [m for m in facts["chorus"] if m.startswith(LAZY)]


@pytest.mark.parametrize("task", ["plan", "step", "finish"])
@pytest.mark.parametrize("on_lambda", [False, True], ids=["local", "lambda"])
def test_a_task_handler_imports_no_web_stack(task: str, on_lambda: bool) -> None:
    facts = probe(task, LAMBDA_ENV if on_lambda else {})
    imported = set(facts["modules"])
    assert not imported & WEB_STACK
    assert not set(facts["tracing"]) & TRACING
    assert not imported & (PROVIDER_SDKS | {"boto3"}), "the environment (store, client) is built on first invocation"


def _succeeds(code: str) -> None:
    """Run `code` in a fresh interpreter with no CHORUS_* of ours; its asserts are the test's."""
    clean = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp")}
    done = subprocess.run([sys.executable, "-c", code], env=clean, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


def test_importing_the_views_or_a_route_builds_no_app() -> None:
    """Only `chorus.api:app` builds the app: a route, the views and the package itself build nothing."""
    code = (
        "import sys\n"
        "import chorus.api, chorus.api.views, chorus.api.changes\n"
        "from chorus.api.routes import agents, group_messages, runs\n"
        "assert 'chorus.api.application' not in sys.modules, 'the app module was imported'\n"
        "assert 'app' not in vars(chorus.api), 'the app was built'\n"
        "from chorus.api import app\n"
        "from chorus.api.application import shared_app\n"
        "assert app is shared_app() is chorus.api.app, 'one app per process'\n"
    )
    _succeeds(code)


def test_the_api_handler_serves_the_one_app() -> None:
    code = (
        "import sys\n"
        f"sys.path.insert(0, {str(FUNCTIONS / 'api')!r})\n"
        "import handler\n"
        "import chorus.api\n"
        "assert handler.app is chorus.api.app\n"
    )
    _succeeds(code)


def test_a_deferred_body_does_not_warn_on_its_first_request(tmp_path: Path) -> None:
    """FastAPI's "alias has no effect" warning, which a deferred body raises at its first request, stays silenced."""
    code = (
        "from fastapi.testclient import TestClient\n"
        "from chorus.api import create_app\n"
        "app = create_app()\n"
        "app.openapi()\n"
        "with TestClient(app, base_url='http://127.0.0.1') as client:\n"
        "    assert client.post('/v1/blocks', json={'label': 'notes', 'value': 'x'}).status_code == 200\n"
        "    assert client.post('/v1/agents/', json={}).status_code == 200\n"
    )
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "CHORUS_DB_PATH": str(tmp_path / "c.db")}
    done = subprocess.run(
        [sys.executable, "-W", "error::UserWarning", "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
