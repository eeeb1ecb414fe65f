"""A task function's environment: the Plan, which starts runs directly, names its own alias."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chorus.settings import Settings
from chorus.workflow.handlers import PUBLISHED_ALIAS, build_environment

MACHINE = "arn:aws:states:us-east-1:123456789012:stateMachine:chorus-run"


def settings(tmp_path: Path, **changes: str) -> Settings:
    base = {
        "store": "sqlite",
        "db_path": str(tmp_path / "chorus.db"),
        "executor": "stepfunctions",
        "state_machine_arn": MACHINE,
        "workflow_start": "invoke",
    }
    return Settings.model_validate({**base, **changes})


@pytest.fixture(autouse=True)
def region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


def test_the_plan_starts_runs_directly_on_its_own_alias(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The template cannot name the Plan's alias in the Plan's own environment (a circular
    reference): the Plan takes it from the function's name, which Lambda sets."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chorus-PlanFunction-abc")
    environment = build_environment(settings(tmp_path), "plan")
    assert environment.workflow.settings.plan_function == f"chorus-PlanFunction-abc:{PUBLISHED_ALIAS}"
    assert environment.workflow.start_run is not None
    asyncio.run(environment.store.close())


def test_a_task_told_to_start_runs_directly_without_the_plan_function_refuses_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Finish is given the Plan's alias by the template; without it, it fails at once, not at the
    first run it would start."""
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "chorus-FinishFunction-abc")
    with pytest.raises(ValueError, match="CHORUS_PLAN_FUNCTION"):
        build_environment(settings(tmp_path), "finish")
    named = build_environment(settings(tmp_path, plan_function="arn:aws:lambda:us-east-1:1:function:p:live"), "finish")
    assert named.workflow.settings.plan_function == "arn:aws:lambda:us-east-1:1:function:p:live"
    asyncio.run(named.store.close())
