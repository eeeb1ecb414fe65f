"""The `store` port: everything Chorus keeps, behind one Protocol.

Adapters (`SQLiteStore`, `DynamoDBStore`) implement it; one contract
test suite runs against each. Rules every adapter must keep:

- Every method is scoped by `tenant_id`; another tenant's object raises
  `NotFound`, exactly like a missing one.
- No method makes the event loop wait: network drivers (boto3) run in
  threads; SQLite does its CPU work on the loop and moves a call that would
  wait for a lock to its worker thread (`SQLiteCore._call` in `sqlite_core.py` says why).
- `commit_step` is idempotent by `(run_id, step_key)`: the second commit of
  the same step raises `AlreadyCommitted` and writes nothing (step record and
  messages go in one transaction). It is fenced on the run: a commit to a run
  whose stored status is terminal raises `RunEnded` and writes nothing, checked
  in the same transaction, so a worker still running after its run was
  cancelled or rolled back can never add a step or put deleted messages back.
- `update_run` is a compare-and-set on `version`: it writes only if the stored
  version equals `expect_version`, else `Conflict`; the stored copy gets
  `version + 1`. Leases, the cancel flag and status changes all go through it.
  `update_block` is the same for memory blocks (agents editing shared memory).
- `claim_group` makes at most one non-terminal run per group the holder;
  `put_group_queue` is a compare-and-set on the line's `version`, like `update_run`;
  `claim_run_slot` keeps at most `limit` non-terminal runs per tenant counted;
  `remember_idempotency_key` keeps the first run stored for a key;
  `claim_first_attempt` keeps the first attempt stored for a run.
- `append_events` keeps the run's event log gapless: the batch must start at
  the log's last `seq_id + 1`, else `Conflict` and nothing is written. A log
  whose last event is the `[DONE]` sentinel (`LOG_END`) is closed: appending
  to it is a `Conflict` too, so a stale writer (a task still running after
  its run was cancelled and finished elsewhere) can never write past the end.
- `end_log` is the only way a run's log gets `[DONE]` from a run's writer:
  the last events, the sentinel and the run's terminal record go in one
  transaction, so a log that is complete always belongs to a terminal run
  (whoever reads `[DONE]` and then polls the run, or sends the group its
  next message, never meets the run still `running`).
- Listings order by (`created_at`, `id`) for resources and by `position` for
  messages; `before`/`after` are ids of the same kind, exclusive. Messages are
  listed by group or by run only (`history_scope`). A run's messages are listed
  by run while the run exists (an adapter may find them through the run's
  group and its creation time); a deleted run's stay in its group's history.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final, Literal, Protocol

from chorus.store.records import (
    AgentRecord,
    BlockRecord,
    GroupQueue,
    GroupRecord,
    IdempotencyRecord,
    McpServerRecord,
    MessageRecord,
    Page,
    RunRecord,
    StepRecord,
    ToolRecord,
)

LOG_END: Final = "[DONE]"
"""The sentinel event that completes (and closes) a run's event log."""


def history_scope(group_id: str | None, run_id: str | None) -> tuple[Literal["group_id", "run_id"], str]:
    """The one history a message listing names, as (field, id); `ValueError` unless exactly one is given.

    A tenant's or an agent's messages across groups are no listing: nothing reads them, and
    indexing them cost every message write two index writes (and a tenant one hot partition)."""
    if group_id is not None and run_id is None:
        return "group_id", group_id
    if run_id is not None and group_id is None:
        return "run_id", run_id
    raise ValueError("A message listing names exactly one of group_id and run_id.")


class Store(Protocol):
    async def open(self) -> None:
        """Connect and migrate; called once at start-up."""

    async def close(self) -> None: ...

    # agents
    async def put_agent(self, agent: AgentRecord) -> None:
        """Create or replace."""

    async def get_agent(self, tenant_id: str, agent_id: str) -> AgentRecord: ...

    async def list_agents(self, tenant_id: str, page: Page) -> list[AgentRecord]: ...

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None: ...

    # tools
    async def put_tool(self, tool: ToolRecord) -> None:
        """Create or replace."""

    async def get_tool(self, tenant_id: str, tool_id: str) -> ToolRecord: ...

    async def get_tools(self, tenant_id: str, tool_ids: list[str]) -> list[ToolRecord]:
        """The tenant's tools among `tool_ids`, in that order, missing ones left out: one read for a whole listing."""
        ...

    async def list_tools(self, tenant_id: str, page: Page, *, name: str | None = None) -> list[ToolRecord]: ...

    async def delete_tool(self, tenant_id: str, tool_id: str) -> None: ...

    # MCP servers
    async def put_mcp_server(self, server: McpServerRecord) -> None:
        """Create or replace."""

    async def get_mcp_server(self, tenant_id: str, server_id: str) -> McpServerRecord: ...

    async def list_mcp_servers(
        self, tenant_id: str, page: Page, *, name: str | None = None
    ) -> list[McpServerRecord]: ...

    async def delete_mcp_server(self, tenant_id: str, server_id: str) -> None: ...

    # memory blocks
    async def put_block(self, block: BlockRecord) -> None:
        """Create or replace."""

    async def get_block(self, tenant_id: str, block_id: str) -> BlockRecord: ...

    async def get_blocks(self, tenant_id: str, block_ids: list[str]) -> list[BlockRecord]:
        """The tenant's blocks among `block_ids`, in that order, missing ones left out (like `get_tools`)."""
        ...

    async def list_blocks(self, tenant_id: str, page: Page, *, label: str | None = None) -> list[BlockRecord]: ...

    async def update_block(self, block: BlockRecord, *, expect_version: int) -> BlockRecord:
        """Compare-and-set on `version`, like `update_run`."""

    async def delete_block(self, tenant_id: str, block_id: str) -> None: ...

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        """Create or replace."""

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord: ...

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]:
        """The tenant's groups, never the hidden ones carrying an agent's direct conversation
        (`solo_agent_id` set); those are read by id only."""

    async def delete_group(self, tenant_id: str, group_id: str) -> None: ...

    # runs
    async def put_run(self, run: RunRecord) -> None:
        """Create or replace."""

    async def get_run(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> RunRecord:
        """The run as stored; `consistent=False` may answer as it was up to about a second ago, for
        half the price of a current read where the store has the choice (DynamoDB)."""

    async def run_version(self, tenant_id: str, run_id: str, *, consistent: bool = True) -> int:
        """The stored run's `version` alone (`NotFound` if absent; `consistent` as for `get_run`): a
        few bytes to read however large the run, for a watcher that reads the whole run only once
        it changed (every write of a run after its creation increments its version)."""

    async def update_run(self, run: RunRecord, *, expect_version: int) -> RunRecord:
        """Compare-and-set: store `run` with `version = expect_version + 1` if the stored version is
        `expect_version`; returns what was stored; `Conflict` otherwise; `NotFound` if absent."""

    async def list_runs(
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        statuses: list[str] | None = None,
        background: bool | None = None,
    ) -> list[RunRecord]: ...

    async def list_unfinished_runs(self, limit: int) -> list[RunRecord]:
        """Runs of every tenant whose status is `created` or `running`, oldest first (crash recovery)."""

    async def delete_run(self, tenant_id: str, run_id: str) -> None:
        """Delete a run with its event log and step records (history stays)."""

    async def claim_first_attempt(self, tenant_id: str, run_id: str, attempt_id: str) -> bool:
        """Claim the run's first attempt for `attempt_id`: a put-if-absent of one small item beside
        the run (never the run record, never indexed), gone with the run. True if `attempt_id`
        holds the claim, stored by this call or an earlier try of it; False if another attempt
        claimed it first. A directly started run's duplicate deliveries race here, once."""

    async def claim_group(self, tenant_id: str, group_id: str, run_id: str) -> str | None:
        """Make `run_id` the group's active run. Returns None on success, else the id of the
        active run holding the group. A holder whose run is terminal or gone is replaced."""

    async def release_group(self, tenant_id: str, group_id: str, run_id: str) -> None:
        """Release the group if `run_id` holds it (no-op otherwise)."""

    async def claim_run_slot(self, tenant_id: str, run_id: str, limit: int) -> bool:
        """Take one of the tenant's `limit` active-run slots for `run_id` (its record stored
        first); False when each is held by a non-terminal run. A slot whose run is terminal or
        gone is free, so a run that ends (however it ends) needs no release. Exact under
        concurrent claims from any number of processes: each slot is one compare-and-set."""

    async def get_group_queue(self, tenant_id: str, group_id: str) -> GroupQueue:
        """The runs waiting for the group (an empty line of version 0 when none ever waited)."""

    async def put_group_queue(self, queue: GroupQueue, *, expect_version: int) -> GroupQueue:
        """Compare-and-set: store `queue` with `version = expect_version + 1` if the stored line's
        version is `expect_version` (0: none stored); returns what was stored; `Conflict` otherwise."""

    async def remember_idempotency_key(self, record: IdempotencyRecord) -> IdempotencyRecord:
        """Store `record` unless an unexpired one exists for (tenant, key); return the stored one."""

    async def forget_idempotency_key(self, tenant_id: str, key: str, run_id: str) -> None:
        """Drop the key if it still points at `run_id` (its request was refused, so a retry may start afresh)."""

    # history
    async def commit_step(self, step: StepRecord, messages: list[MessageRecord]) -> None:
        """Write a step record and its messages once; `AlreadyCommitted` if the step was committed before,
        `RunEnded` if the run's stored status is terminal (nothing is written either way)."""

    async def list_steps(self, tenant_id: str, run_id: str) -> list[StepRecord]:
        """A run's committed steps, in step order."""

    async def list_messages(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[MessageRecord]:
        """A page of one group's or one run's messages: name exactly one (`history_scope`). Those are
        the only histories anything reads, so they are the only ones an adapter indexes."""

    async def history_page(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, run_id: str | None = None
    ) -> list[dict[str, Any]]:
        """`list_messages` as the stored `MessageRecord` JSON, decoded but not validated again (it was
        when written): what a send reads of its history, where validation was most of the cost."""
        ...

    async def delete_group_messages(self, tenant_id: str, group_id: str) -> int:
        """Forget a group's history; returns how many messages went."""

    async def delete_run_messages(self, tenant_id: str, run_id: str) -> int:
        """Take a run's messages out of history (a rolled-back run, which still exists); returns how many went."""

    # the run event log
    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        """Append serialised events numbered `first_seq`, `first_seq + 1`, …; `Conflict` on a gap or overlap."""

    async def end_log(
        self,
        tenant_id: str,
        run_id: str,
        first_seq: int,
        events: list[str],
        end: Callable[[RunRecord], RunRecord],
    ) -> RunRecord:
        """Append `events` (the last one `LOG_END`) as `append_events` does and, in the same
        transaction, store `end(stored run)` with its version bumped: the log completes and the
        run record ends together or not at all. `end` may be applied more than once (the record
        changed meanwhile, e.g. a cancel flag) and returns the record unchanged to write the events
        only (a run already ended), or raises to refuse the record as stored: the transaction with
        `LOG_END` is then not written and the error is raised. Returns the run as stored; `Conflict`
        as `append_events`."""

    async def read_events(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` events with `seq_id > after_seq`, in order, as `(seq_id, json)`."""

    async def last_seq(self, tenant_id: str, run_id: str) -> int:
        """The highest `seq_id` in the run's log, 0 when empty."""
