"""Managers, approvals, memory blocks and custom tools on the DynamoDB store: the functional tests, imported.

`make_app` (conftest.py) builds the app on moto, so each of these proves the
same behaviour end to end on DynamoDB: every manager type in every mode,
parallel fan-out committing in plan order, sleeptime runs editing shared
blocks with compare-and-set, approvals pausing and resuming a group, tools.
"""

from __future__ import annotations

from test_approvals import test_approve_resumes_the_agent_and_the_group, test_deny_with_a_reason_tells_the_model
from test_custom_tools import test_a_tool_requiring_approval_runs_once_approved, test_tools_resource
from test_manager_runs import (
    client,
    recorder,
    test_cancel_mid_fan_out_stops_every_worker_and_commits_none,
    test_every_manager_in_every_mode,
    test_sleeptime_agents_run_as_their_own_runs_every_n_turns,
    test_supervisor_broadcasts_and_answers_from_the_replies,
    test_supervisor_worker_failure_is_its_reply_and_the_run_goes_on,
)
from test_memory_blocks import test_agent_core_memory_routes, test_sleeptime_agents_update_the_groups_shared_memory

__all__ = [
    "client",
    "recorder",
    "test_a_tool_requiring_approval_runs_once_approved",
    "test_agent_core_memory_routes",
    "test_approve_resumes_the_agent_and_the_group",
    "test_cancel_mid_fan_out_stops_every_worker_and_commits_none",
    "test_deny_with_a_reason_tells_the_model",
    "test_every_manager_in_every_mode",
    "test_sleeptime_agents_run_as_their_own_runs_every_n_turns",
    "test_sleeptime_agents_update_the_groups_shared_memory",
    "test_supervisor_broadcasts_and_answers_from_the_replies",
    "test_supervisor_worker_failure_is_its_reply_and_the_run_goes_on",
    "test_tools_resource",
]
