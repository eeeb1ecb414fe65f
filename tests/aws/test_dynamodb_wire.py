"""The wire of the DynamoDB store: bounded backoff on throttling, conditions never retried, error translation."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from chorus.api.errors import status_of
from chorus.errors import ChorusError, Conflict, StorageUnavailable
from chorus.store.dynamodb import DynamoDBStore
from chorus.store.dynamodb_wire import DynamoDBTable, chunk_actions


def error(code: str, reasons: list[str] | None = None) -> ClientError:
    response: dict[str, Any] = {"Error": {"Code": code, "Message": code}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "Op")


class FlakyClient:
    """Fails with the given errors in turn, then answers."""

    def __init__(self, *errors: ClientError) -> None:
        self.errors = list(errors)
        self.calls = 0

    def get_item(self, **_: Any) -> dict[str, Any]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return {}


@pytest.mark.parametrize(
    "failure",
    [
        error("ProvisionedThroughputExceededException"),
        error("ThrottlingException"),
        error("TransactionCanceledException", ["None", "TransactionConflict"]),
    ],
)
def test_throttling_is_retried_with_bounded_backoff(failure: ClientError) -> None:
    client = FlakyClient(failure, failure, failure)
    table = DynamoDBTable(client, "t", max_attempts=4, base_delay_s=0)
    assert table.call("get_item") == {}
    assert client.calls == 4
    stubborn = FlakyClient(*[failure] * 10)
    with pytest.raises(ClientError):
        DynamoDBTable(stubborn, "t", max_attempts=4, base_delay_s=0).call("get_item")
    assert stubborn.calls == 4


@pytest.mark.parametrize(
    "failure",
    [
        error("ConditionalCheckFailedException"),
        error("TransactionCanceledException", ["ConditionalCheckFailed", "None"]),
        error("TransactionCanceledException", ["ConditionalCheckFailed", "TransactionConflict"]),
        error("ValidationException"),
    ],
)
def test_answers_are_never_retried(failure: ClientError) -> None:
    client = FlakyClient(failure)
    with pytest.raises(ClientError):
        DynamoDBTable(client, "t", base_delay_s=0).call("get_item")
    assert client.calls == 1


async def test_backend_errors_become_chorus_errors_at_the_edge() -> None:
    store = DynamoDBStore(FlakyClient(*[error("InternalServerError")] * 20), "t")
    store.table.base_delay_s = 0
    await store.open()
    with pytest.raises(ChorusError, match="Storage error: InternalServerError") as caught:
        await store.get_agent("t1", "agent-1")
    assert type(caught.value) is StorageUnavailable and status_of(caught.value) == 503  # retryable
    await store.close()
    with pytest.raises(RuntimeError, match="not open"):
        await store.get_agent("t1", "agent-1")


def test_transactions_are_chunked_by_count_and_size() -> None:
    small = [{"Put": {"Item": {"PK": {"S": "p"}, "data": {"S": "x" * 10}}}}] * 250
    assert [len(c) for c in chunk_actions(small)] == [100, 100, 50]
    big = [{"Put": {"Item": {"PK": {"S": "p"}, "data": {"S": "x" * 340_000}}}}] * 25
    chunks = chunk_actions(big)
    assert sum(len(c) for c in chunks) == 25 and all(len(c) <= 10 for c in chunks)


async def test_a_compare_and_set_whose_lost_response_was_retried_still_succeeds(dynamodb: Any) -> None:
    """boto3 re-sends a put whose response was lost; the re-send fails its own condition, yet the write is ours."""
    from chorus.store.records import RunRecord
    from support.dynamodb import TABLE, lost_responses

    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    run = RunRecord(tenant_id="t1", id="run-1", created_at="2026-01-01T00:00:00+00:00", agent_id="agent-1")
    await store.put_run(run)
    with lost_responses(dynamodb, "put_item"):
        stored = await store.update_run(run.model_copy(update={"lease_owner": "w1"}), expect_version=0)
    assert (await store.get_run("t1", "run-1")) == stored and stored.version == 1
    with pytest.raises(Conflict):
        await store.update_run(run.model_copy(update={"lease_owner": "w2"}), expect_version=0)
    await store.close()


async def test_an_ending_whose_run_changed_meanwhile_is_applied_again(dynamodb: Any) -> None:
    """Between reading the run and the closing transaction a cancel flag lands: only the record's
    condition fails, and the ending is rebuilt from the new record (no lost flag, no lost log)."""
    from chorus.runs.ending import ending
    from chorus.store.base import LOG_END
    from chorus.store.records import RunRecord
    from support.dynamodb import TABLE

    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    run = RunRecord(tenant_id="t1", id="run-1", created_at="2026-01-01T00:00:00+00:00", agent_id="a", status="running")
    await store.put_run(run)
    end = ending("end_turn", 60)
    seen: list[int] = []

    def end_racing_a_cancel(r: RunRecord) -> RunRecord:
        seen.append(r.version)
        if len(seen) == 1:  # another writer sets the cancel flag after this read
            flagged = r.model_copy(update={"cancel_requested": True, "version": r.version + 1})
            store._cas_sync("Run", flagged, store._run_item(flagged), r.version)
        return end(r)

    stored = await store.end_log("t1", "run-1", 1, ["stop", LOG_END], end_racing_a_cancel)
    assert seen == [0, 1]
    assert stored.version == 2 and stored.cancel_requested and stored.status == "completed"
    assert await store.get_run("t1", "run-1") == stored
    assert [e for _, e in await store.read_events("t1", "run-1", 0, 10)] == ["stop", LOG_END]
    await store.close()


async def test_every_boto3_call_runs_off_the_event_loop(dynamodb: Any) -> None:
    """Invariant 5 on DynamoDB: a network call may take any time, so none runs on the loop's thread."""
    import threading

    from chorus.store.records import RunRecord
    from support.dynamodb import TABLE

    store = DynamoDBStore(dynamodb, TABLE)
    await store.open()
    threads: set[int] = set()
    original = dynamodb._make_api_call

    def record(operation: str, params: Any) -> Any:
        threads.add(threading.get_ident())
        return original(operation, params)

    dynamodb._make_api_call = record
    try:
        run = RunRecord(tenant_id="t1", id="run-1", created_at="2026-01-01T00:00:00+00:00", agent_id="a")
        await store.put_run(run)
        await store.get_run("t1", "run-1")
        await store.append_events("t1", "run-1", 1, ["e1"])
        await store.read_events("t1", "run-1", 0, 10)
    finally:
        del dynamodb._make_api_call
    assert threads and threading.get_ident() not in threads
    await store.close()
