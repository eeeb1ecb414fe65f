"""Fixtures of the workflow suite (defined in `support.workflow_harness`)."""

from support.workflow_harness import aws_env, direct, harness, inline, started, workflow_settings

__all__ = ["aws_env", "direct", "harness", "inline", "started", "workflow_settings"]
