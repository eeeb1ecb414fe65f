"""Traces leave a real server over OTLP/HTTP: the OpenTelemetry SDK's exporter, a collector-shaped
receiver on loopback, and the official SDK (strict validation) reading the run's `trace_id` extension."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from letta_client import Letta

from chorus.devserver import Server, running_server
from support.otlp_receiver import Receiver, otlp_receiver

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with otlp_receiver() as r:
        yield r


@pytest.fixture(scope="module")
def traced_server(receiver: Receiver) -> Iterator[Server]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "OTEL_SERVICE_NAME": "chorus-e2e",
    }
    with running_server(env) as s:
        yield s


def test_a_runs_trace_reaches_the_collector(traced_server: Server, receiver: Receiver) -> None:
    client = Letta(base_url=traced_server.url, api_key="local", max_retries=0, _strict_response_validation=True)
    agents = [
        client.agents.create(name=name, model="scripted/default", system=f"You are {name}.", metadata={"scripted": {}})
        for name in ("Ada", "Brook")
    ]
    group = client.groups.create(agent_ids=[a.id for a in agents], description="traced")
    run_ids = {getattr(e, "run_id", None) for e in client.groups.messages.stream(group.id, input="hi")} - {None}
    (run_id,) = run_ids
    run = client.runs.retrieve(str(run_id))
    assert run.status == "completed"
    trace_id = (run.model_extra or {})["trace_id"]

    spans = receiver.wait_for(trace_id, "chorus.run")
    (root,) = [s for s in spans if s.name == "chorus.run"]
    assert root.parent_span_id == "" and root.attributes["chorus.run_id"] == run.id
    assert root.resource["service.name"] == "chorus-e2e"
    by_id = {s.span_id: s for s in spans}
    turns = [s for s in spans if s.name.startswith("invoke_agent ")]
    assert sorted(t.attributes["gen_ai.agent.name"] for t in turns) == ["Ada", "Brook"]
    assert all(by_id[by_id[t.parent_span_id].parent_span_id] is root for t in turns), "turn ← round ← run"
    chats = [s for s in spans if s.name.startswith("chat ")]
    assert len(chats) == 2 and all(by_id[c.parent_span_id] in turns for c in chats)
    assert all(c.attributes["gen_ai.usage.output_tokens"] > 0 for c in chats)
    assert all(s.status_code != 2 for s in spans)
    assert set(receiver.requests) == {"application/x-protobuf"}
