"""Fixtures of the workflow suite (defined in `workflow_harness`, importable by name from any suite)."""

from workflow_harness import aws_env, harness, workflow_settings

__all__ = ["aws_env", "harness", "workflow_settings"]
