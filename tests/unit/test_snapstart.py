"""SnapStart's hooks: what is prepared before the snapshot, and what a restored copy must not share.

The Lambda runtime's hook library (`snapshot_restore_py`) exists only on
Lambda; here a module of that name records what is registered, and the API's
hooks are called as the Lambda Web Adapter calls them, by `POST`.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import httpx

from chorus import snapstart
from chorus.api import create_app
from chorus.api.lazy_routes import ALL
from chorus.settings import Settings

HOOKS = {snapstart.BEFORE_PATH: "/_chorus/snapstart/before", snapstart.AFTER_PATH: "/_chorus/snapstart/after"}


def test_the_api_serves_no_hook_unless_both_paths_are_configured() -> None:
    app = create_app(Settings())
    assert not snapstart.install_api_hooks(app, {})
    assert not snapstart.install_api_hooks(app, {snapstart.BEFORE_PATH: "/b"})
    assert "/b" not in {getattr(r, "path", None) for r in app.routes}


async def test_the_api_warms_before_the_snapshot_and_takes_a_new_identity_after_restore(tmp_path: Path) -> None:
    app = create_app(Settings(db_path=tmp_path / "c.db"))
    assert snapstart.install_api_hooks(app, HOOKS)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
            runs = app.state.services.runs
            assert app.state.routes.loaded == set()
            assert (await client.post(HOOKS[snapstart.BEFORE_PATH])).status_code == 204
            assert app.state.routes.loaded == set(ALL), "every route module is in the snapshot"

            owner = runs.lease.owner
            random.seed(7)
            snapshot_draw = random.random()
            random.seed(7)  # the state every environment restored from the snapshot starts with
            assert (await client.post(HOOKS[snapstart.AFTER_PATH])).status_code == 204
            assert random.random() != snapshot_draw, "reseeded: trace ids and jitter differ per environment"
            assert runs.lease.owner != owner and runs.lease.owner.startswith("worker-")
            assert runs.recovery.lease is runs.lease, "recovery adopts runs under the same new identity"
            assert (await client.get("/v1/health")).status_code == 200


_TASK_PROBE = """
import sys, types
registered = {"before": [], "after": []}
runtime = types.ModuleType("snapshot_restore_py")
runtime.register_before_snapshot = registered["before"].append
runtime.register_after_restore = registered["after"].append
sys.modules["snapshot_restore_py"] = runtime
from chorus import snapstart
from chorus.workflow.handlers import TaskHandler
TaskHandler("step")
assert registered == {"before": [snapstart.warm_tasks], "after": [snapstart.after_restore]}, registered
lazy = [m for m in snapstart.TASK_MODULES if m not in sys.modules]
assert "chorus.store.dynamodb" in lazy and "boto3" not in sys.modules, lazy
registered["before"][0]()
assert all(m in sys.modules for m in snapstart.TASK_MODULES)
assert "boto3" in sys.modules and "chorus.llm.bedrock" in sys.modules
registered["after"][0]()
"""


def test_the_task_functions_register_their_hooks_with_the_runtime() -> None:
    """In a fresh interpreter (what a task imports by itself is the point): the hooks are registered
    when the handler is built, and the before-snapshot hook imports what the first invocation would."""
    assert not snapstart.register_task_hooks(), "off Lambda there is no hook library"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", "/tmp"),
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    done = subprocess.run([sys.executable, "-c", _TASK_PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
