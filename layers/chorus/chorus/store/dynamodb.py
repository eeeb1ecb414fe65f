"""`DynamoDBStore`: the AWS adapter of the `store` port, on one table.

The key schema is in `dynamodb_keys`, the table definition in
`dynamodb_table`, retries and large bodies in `dynamodb_wire`, listings in
`dynamodb_listing`, the run event log in `dynamodb_log`. The store is
composed of one part per responsibility: the pool and generic record helpers
(`dynamodb_core`), the resources (`dynamodb_resources`), runs with their
claims, slots, lines and idempotency keys (`dynamodb_runs`), the message
history (`dynamodb_history`) and the event-log methods (`dynamodb_events`).
Every boto3 call runs on a bounded worker pool, never on the event loop
(invariant 5).
Each record is kept as its full pydantic JSON, compressed (`z`; `data` as
text in items written before), beside the key and index attributes, so a new
record field needs no change here.

Every invariant of the port is a conditional write, never a read-then-write:

- `append_events`: one put of the batch's record keyed by its first
  `seq_id`, conditioned on no record starting there, once the writer knows
  the record before ends at `first_seq - 1` and is open (`dynamodb_log`);
  a lost race or a gap is `Conflict` with nothing written.
- `commit_step`: the step item is put with `attribute_not_exists` in the
  same transaction as its messages; a second commit is `AlreadyCommitted`.
  The first transaction also checks the run item's `status` is not terminal
  (`RunEnded` otherwise).
- `update_run`: `version = expect_version`; `Conflict` or `NotFound`.
- `claim_group`: a compare-and-set on the holder seen; `put_group_queue`: on the line's
  `version` (`attribute_not_exists` for the first); `remember_idempotency_key`:
  `attribute_not_exists OR expired`, returning the stored record otherwise.

Event-log items and step records carry a TTL of
`retention_s + log_ttl_slack_s` from their write: the run's own
`expires_at` (set when it ends) is what answers 410, and the slack keeps a
long run's early events until its end; DynamoDB deletes them later.
"""

from __future__ import annotations

from chorus.store.dynamodb_core import UNFINISHED_STATUSES, DynamoDBCore
from chorus.store.dynamodb_events import DynamoDBEvents
from chorus.store.dynamodb_history import DynamoDBHistory
from chorus.store.dynamodb_resources import DynamoDBResources
from chorus.store.dynamodb_runs import DynamoDBRuns

__all__ = ["UNFINISHED_STATUSES", "DynamoDBCore", "DynamoDBStore"]


class DynamoDBStore(DynamoDBResources, DynamoDBRuns, DynamoDBHistory, DynamoDBEvents):
    """The `store` port on one DynamoDB table (see `dynamodb_keys` for the schema, `DynamoDBCore` for the arguments)."""

    @classmethod
    def from_settings(cls, table_name: str, retention_s: float) -> DynamoDBStore:
        """A store with a default boto3 client (region, credentials and `AWS_ENDPOINT_URL` from the environment)."""
        import boto3
        from botocore.config import Config

        config = Config(retries={"mode": "standard", "max_attempts": 3}, max_pool_connections=32)
        return cls(boto3.client("dynamodb", config=config), table_name, retention_s=retention_s, max_workers=32)
