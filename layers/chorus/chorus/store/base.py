"""The `store` port: everything Chorus keeps, behind one Protocol.

Adapters (`SQLiteStore`, later `DynamoDBStore`) implement it; one contract
test suite runs against each. Rules every adapter must keep:

- Every method is scoped by `tenant_id`; another tenant's object raises
  `NotFound`, exactly like a missing one.
- No method blocks the event loop: synchronous drivers run in a thread.
- `commit_step` is idempotent by `(run_id, step_key)`: the second commit of
  the same step raises `AlreadyCommitted` and writes nothing.
- `append_events` keeps the run's event log gapless: the batch must start at
  the log's last `seq_id + 1`, else `Conflict` and nothing is written.
- Listings order by (`created_at`, `id`) for resources and by `position` for
  messages; `before`/`after` are ids of the same kind, exclusive.
"""

from __future__ import annotations

from typing import Protocol

from chorus.store.records import AgentRecord, GroupRecord, MessageRecord, Page, RunRecord


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

    # groups
    async def put_group(self, group: GroupRecord) -> None:
        """Create or replace."""

    async def get_group(self, tenant_id: str, group_id: str) -> GroupRecord: ...

    async def list_groups(self, tenant_id: str, page: Page) -> list[GroupRecord]: ...

    async def delete_group(self, tenant_id: str, group_id: str) -> None: ...

    # runs
    async def put_run(self, run: RunRecord) -> None:
        """Create or replace."""

    async def get_run(self, tenant_id: str, run_id: str) -> RunRecord: ...

    async def list_runs(
        self, tenant_id: str, page: Page, *, group_id: str | None = None, agent_id: str | None = None
    ) -> list[RunRecord]: ...

    # history
    async def commit_step(self, tenant_id: str, run_id: str, step_key: str, messages: list[MessageRecord]) -> None:
        """Write a step's messages once; `AlreadyCommitted` if this step was committed before."""

    async def list_messages(
        self,
        tenant_id: str,
        page: Page,
        *,
        group_id: str | None = None,
        agent_id: str | None = None,
        run_id: str | None = None,
    ) -> list[MessageRecord]: ...

    async def delete_group_messages(self, tenant_id: str, group_id: str) -> int:
        """Forget a group's history; returns how many messages went."""

    # the run event log
    async def append_events(self, tenant_id: str, run_id: str, first_seq: int, events: list[str]) -> None:
        """Append serialised events numbered `first_seq`, `first_seq + 1`, …; `Conflict` on a gap or overlap."""

    async def read_events(self, tenant_id: str, run_id: str, after_seq: int, limit: int) -> list[tuple[int, str]]:
        """Up to `limit` events with `seq_id > after_seq`, in order, as `(seq_id, json)`."""

    async def last_seq(self, tenant_id: str, run_id: str) -> int:
        """The highest `seq_id` in the run's log, 0 when empty."""
