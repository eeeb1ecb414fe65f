"""Schemathesis against the served OpenAPI document: every route, bounded, no 5xx, every response as declared.

The server is real uvicorn on loopback (`chorus.devserver`), seeded with one
of each resource (an agent with a memory block and a tool, a round-robin
group, a finished background run): every other generated case of an
operation that takes ids is sent with those ids instead of the random ones,
so the fuzzer reaches the handlers behind the 404s (deletes keep their
random ids, or the seeds would be gone after the first). Checks:
`not_a_server_error` and `response_schema_conformance` (a response whose
status the document declares must match its schema; the SSE routes declare
`text/event-stream` with no schema, so only their status is checked).
`CHORUS_FUZZ_EXAMPLES` examples per operation (default 6; `make soak`: 60).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from chorus.api import create_app
from chorus.devserver import Server, running_server

EXAMPLES = int(os.environ.get("CHORUS_FUZZ_EXAMPLES", "6"))
TOOL_SOURCE = (
    'def roll(sides: int) -> int:\n    """Roll a die.\n\n    Args:\n        sides: faces\n    """\n    return sides\n'
)


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    with running_server() as s:
        yield s


@pytest.fixture(scope="module")
def seeds(server: Server) -> dict[str, str]:
    """One existing object of each kind, by path parameter name."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        tool = client.post("/v1/tools", json={"source_code": TOOL_SOURCE}).json()
        block = client.post("/v1/blocks", json={"label": "project", "value": "fuzz"}).json()
        agent = client.post(
            "/v1/agents",
            json={"name": "Fuzz", "memory_blocks": [{"label": "human", "value": "x"}], "tool_ids": [tool["id"]]},
        ).json()
        group = client.post("/v1/groups", json={"agent_ids": [agent["id"]]}).json()
        run = client.post(f"/v1/groups/{group['id']}/messages/async", json={"input": "hi"}).json()
        for _ in range(100):
            if client.get(f"/v1/runs/{run['id']}").json()["status"] not in ("created", "running"):
                break
    return {
        "agent_id": agent["id"], "group_id": group["id"], "block_id": block["id"], "tool_id": tool["id"],
        "run_id": run["id"], "block_label": "human", "tool_name": tool["name"],
    }  # fmt: skip


DOCUMENT = create_app().openapi()
"""What the server serves at `/openapi.json` (checked below); loaded at import, as schemathesis's lazy
fixture loader does not run on pytest 9 (`'Function' object has no attribute '_nodeid'`)."""
schema = schemathesis.openapi.from_dict(DOCUMENT)
_turns = itertools.count()


def test_the_fuzzed_document_is_the_served_one(server: Server) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), print_blob=True)
def test_no_server_errors_and_every_response_as_declared(case: Any, server: Server, seeds: dict[str, str]) -> None:
    if case.path_parameters and case.method != "DELETE" and next(_turns) % 2:
        for name in case.path_parameters:
            if name in seeds:
                case.path_parameters[name] = seeds[name]
    case.call_and_validate(base_url=server.url, timeout=30, checks=[not_a_server_error, response_schema_conformance])
