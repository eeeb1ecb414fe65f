"""The whole AWS shape on loopback: real uvicorn on the `stepfunctions` executor and the DynamoDB
store, against a moto server that executes `statemachine/run.asl.json` and dispatches each task to
the real `functions/<task>/handler.py` (in this process), driven by `letta-client`.

What it adds to `tests/workflow`: real HTTP between every hop (client → Chorus, Chorus → "AWS",
the state machine → "Lambda", the tasks → "DynamoDB"), and a client that hangs up mid-run and
resumes a run that a state machine, not the server it talks to, is executing.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any
from unittest import mock

import boto3
import httpx
import pytest
from letta_client import Letta
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.dynamodb.responses import DynamoHandler
from moto.server import ThreadedMotoServer

from chorus.devserver import Server, free_port, running_server
from chorus.settings import get_settings
from chorus.store.dynamodb_table import create_table
from support.workflow_harness import DEFINITION, FUNCTIONS, TABLE, load_handler, substituted

pytestmark = pytest.mark.e2e
REGION = "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": REGION}


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """A moto server executing state machines, its Lambda dispatching to the real task handlers."""
    port = free_port()
    monkeypatch.setenv("MOTO_PORT", str(port))  # moto's state machines call Lambda here
    endpoint = f"http://127.0.0.1:{port}"
    machine_arn = f"arn:aws:states:{REGION}:123456789012:stateMachine:chorus-run"
    env = {
        **CREDENTIALS,
        "AWS_ENDPOINT_URL": endpoint,
        "CHORUS_STORE": "dynamodb",
        "CHORUS_TABLE_NAME": TABLE,
        "CHORUS_EXECUTOR": "stepfunctions",
        "CHORUS_STATE_MACHINE_ARN": machine_arn,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    handlers = {task: load_handler(task) for task in FUNCTIONS}
    by_name = {name: handlers[task] for task, name in FUNCTIONS.items()}
    lock = threading.RLock()
    original_call = DynamoHandler.call_action

    def atomic(self: DynamoHandler) -> Any:
        with lock:
            return original_call(self)

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, headers: Any, response_headers: Any) -> bytes:
        try:
            return json.dumps(by_name[function_name.split(":")[-1]](json.loads(body), None)).encode()
        except Exception as exc:
            response_headers["x-amz-function-error"] = "Unhandled"
            payload = {"errorMessage": str(exc), "errorType": type(exc).__name__, "stackTrace": traceback.format_exc()}
            return json.dumps(payload).encode()

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    with (
        mock.patch.object(DynamoHandler, "call_action", atomic),
        mock.patch.object(LambdaSimpleBackend, "invoke", invoke),
    ):
        server.start()
        try:
            config = {"stepfunctions": {"execute_state_machine": True}, "lambda": {"use_docker": False}}
            assert httpx.post(f"{endpoint}/moto-api/config", json=config).status_code == 201
            session = boto3.Session(region_name=REGION)
            create_table(session.client("dynamodb", endpoint_url=endpoint), TABLE)
            sfn = session.client("stepfunctions", endpoint_url=endpoint)
            role = "arn:aws:iam::123456789012:role/chorus-run"
            created = sfn.create_state_machine(
                name="chorus-run", definition=substituted(DEFINITION.read_text()), roleArn=role
            )
            assert created["stateMachineArn"] == machine_arn
            yield endpoint, machine_arn
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                executions = sfn.list_executions(stateMachineArn=machine_arn)["executions"]
                if all(e["status"] != "RUNNING" for e in executions):
                    break
                time.sleep(0.05)
        finally:
            for handler in handlers.values():
                handler.reset()
            httpx.post(f"{endpoint}/moto-api/reset")  # moto's state outlives its server: the next test starts empty
            server.stop()
            get_settings.cache_clear()


@pytest.fixture
def chorus(aws: tuple[str, str]) -> Iterator[Server]:
    with running_server() as server:  # inherits the environment above: DynamoDB and Step Functions on moto
        yield server


def dropped_and_resumed(client: Letta, stream: Any) -> tuple[str, list[Any]]:
    """Read 8 events of a background run's stream, hang up, resume it: its run id and every event, gapless."""
    received = []
    for event in stream:
        received.append(event)
        if len(received) == 8:
            break
    stream.close()  # the client goes away; the state machine goes on
    run_id = received[0].run_id
    resumed = list(client.runs.messages.stream(run_id, starting_after=received[-1].seq_id))
    whole = received + resumed
    assert [e.seq_id for e in whole] == list(range(1, len(whole) + 1))
    return run_id, whole


def test_a_background_run_on_the_state_machine_is_dropped_resumed_and_complete(
    aws: tuple[str, str], chorus: Server
) -> None:
    endpoint, machine_arn = aws
    client = Letta(base_url=chorus.url, api_key="local", max_retries=0, _strict_response_validation=True)
    agents = [
        client.agents.create(
            name=name, model="scripted/default", metadata={"scripted": {"tokens": 20, "delay_s": 0.01}}
        )
        for name in ("Ada", "Brook")
    ]
    group = client.groups.create(agent_ids=[a.id for a in agents], description="e2e on step functions")
    stream = client.groups.messages.stream(group.id, input="hi", stream_tokens=True, background=True)
    run_id, whole = dropped_and_resumed(client, stream)
    texts: dict[str, str] = {}
    for e in whole:
        if e.message_type == "assistant_message":
            texts[e.name] = texts.get(e.name, "") + e.content
    history = list(client.groups.messages.list(group.id, order="asc"))
    assert [m.message_type for m in history] == ["user_message", "assistant_message", "assistant_message"]
    assert texts == {m.name: m.content for m in history[1:]}, "the chunks, over both connections, make the history"
    assert all(text.startswith(f"{name} (turn 1): tok0") for name, text in texts.items())
    assert whole[-2].stop_reason == "end_turn" and whole[-1].message_type == "usage_statistics"
    assert client.runs.retrieve(run_id).status == "completed"
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)
    executions = sfn.list_executions(stateMachineArn=machine_arn)["executions"]
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]


def test_an_agents_direct_messages_on_dynamodb_and_the_state_machine(aws: tuple[str, str], chorus: Server) -> None:
    endpoint, machine_arn = aws
    client = Letta(base_url=chorus.url, api_key="local", max_retries=0, _strict_response_validation=True)
    agent = client.agents.create(
        name="Ada", model="scripted/default", metadata={"scripted": {"tokens": 20, "delay_s": 0.01}}
    )
    direct = client.agents.messages.create(agent.id, input="first")  # in the API process, on DynamoDB
    assert direct.stop_reason.stop_reason == "end_turn"
    stream = client.agents.messages.stream(agent.id, input="second", stream_tokens=True, background=True)
    run_id, whole = dropped_and_resumed(client, stream)
    text = "".join(str(e.content) for e in whole if e.message_type == "assistant_message")
    assert text.startswith("Ada (turn 2): tok0"), "the state machine gives the agent its own history"
    history = list(client.agents.messages.list(agent.id, order="asc"))
    assert [m.message_type for m in history] == ["user_message", "assistant_message"] * 2
    assert history[-1].content == text
    run = client.runs.retrieve(run_id)
    assert run.status == "completed" and run.agent_id == agent.id
    sfn = boto3.client("stepfunctions", region_name=REGION, endpoint_url=endpoint)
    executions = sfn.list_executions(stateMachineArn=machine_arn)["executions"]
    assert [(e["name"], e["status"]) for e in executions] == [(run_id, "SUCCEEDED")]
