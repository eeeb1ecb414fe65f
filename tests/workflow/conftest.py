"""Fixtures of the workflow suite (defined in `support.workflow_harness`)."""

from support.workflow_harness import aws_env, harness, inline, workflow_settings

__all__ = ["aws_env", "harness", "inline", "workflow_settings"]
