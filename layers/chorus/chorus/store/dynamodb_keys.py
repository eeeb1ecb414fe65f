"""The key schema of the DynamoDB store: one table, every entity, every index.

Every key starts with `T#<tenant>#`, so no read can reach another tenant's
items (invariant 6). Base-table keys (`PK`, `SK`):

    agent      T#t#AGENT#<id>    AGENT
    block      T#t#BLOCK#<id>    BLOCK        (memory block; `label`, `version` attributes)
    tool       T#t#TOOL#<id>     TOOL         (custom tool; `name` attribute)
    MCP server T#t#MCPSERVER#<id> MCPSERVER   (`name` attribute: its server_name)
    group      T#t#GROUP#<id>    GROUP        (its claim: CLAIM, its waiting runs: QUEUE, same partition)
    run        T#t#RUN#<id>      RUN          (same partition: E#…, STEP#…; a log begun before E#: LOG, EV#…)
    event log  T#t#RUN#<id>      E#<first seq, 12 digits>
    (before)   T#t#RUN#<id>      LOG (head), EV#<last seq, 12 digits>
    step       T#t#RUN#<id>      STEP#<step_key>
    1st attempt T#t#RUN#<id>     ATTEMPT      (`attempt` attribute: who claimed a direct run's first attempt)
    message    T#t#MSG#<id>      MSG
    idem. key  T#t#IDEM#<key>    IDEM
    run slot   T#t#RUNSLOTS      SLOT#<n, 5 digits>   (`run_id` attribute: an active-run slot)
    body part  <owner PK>        <owner SK>#PART#<n>

Listings use sparse, overloaded GSIs that share one range key, `OSK`
(`<created_at>#<id>` for resources, `<position>#<id>` for messages), so
(`created_at`, `id`) order is the string order of `OSK` (`#` sorts below
every character of an ISO timestamp or a position):

    by_tenant   G1 = T#t#AGENT | T#t#GROUP | T#t#RUN | T#t#BLOCK | T#t#TOOL | T#t#MCPSERVER
    by_group    G2 = T#t#GROUP#<g>#RUN | T#t#GROUP#<g>#MESSAGE
    by_agent    G3 = T#t#AGENT#<a>#RUN
    by_run      G4 = T#t#RUN#<r>#MESSAGE, only on a message without a group
    unfinished  UNF = UNFINISHED#<shard 0-7>, only on runs whose status is created/running
                (sharded by run id: every running run renews its lease through it)

A message is in one index only: histories are read by group or by run, and each index
an item is in costs its every write again. A message of a group is in `G2`, where its
run's messages are read too (its position, `<commit ns>:<run id>:...`, names its run;
`dynamodb_history`); one without a group (a sleeptime agent's run) is in `G4`. Messages
written before also carry `G4`, `G1 = T#t#MESSAGE` and `G3 = T#t#AGENT#<a>#MESSAGE`:
they list by their `G2` as any other, so nothing is migrated, and nothing queries the rest.
"""

from __future__ import annotations

import zlib
from typing import Any, Final

Item = dict[str, Any]
"""A DynamoDB item in the low-level client's typed form (`{"S": ...}`)."""

INDEXES: Final[dict[str, str]] = {
    "by_tenant": "G1",
    "by_group": "G2",
    "by_agent": "G3",
    "by_run": "G4",
    "unfinished": "UNF",
}
"""GSI name -> its partition-key attribute; every GSI's range key is `OSK`."""

ORDER_KEY: Final = "OSK"
TTL_ATTRIBUTE: Final = "expires_at"
UNFINISHED_SHARDS: Final = 8
SEQ_DIGITS: Final = 12

RUN_SK: Final = "RUN"
LOG_SK: Final = "LOG"
CLAIM_SK: Final = "CLAIM"
ATTEMPT_SK: Final = "ATTEMPT"
QUEUE_SK: Final = "QUEUE"
EVENT_PREFIX: Final = "EV#"
RECORD_PREFIX: Final = "E#"
"""Event-log records keyed by their first `seq_id`; sorts below `EV#` and `LOG`, the first format's items."""
STEP_PREFIX: Final = "STEP#"
PART_MARK: Final = "#PART#"

KIND_SK: Final[dict[str, str]] = {
    "Agent": "AGENT",
    "Group": "GROUP",
    "Run": RUN_SK,
    "Message": "MSG",
    "Block": "BLOCK",
    "Tool": "TOOL",
    "McpServer": "MCPSERVER",
}
"""The sort key of each record kind's main item; its partition is `T#t#<SK>#<id>` (`RUN`, `MSG`...)."""
_KIND_PK: Final[dict[str, str]] = {
    "Agent": "AGENT",
    "Group": "GROUP",
    "Run": "RUN",
    "Message": "MSG",
    "Block": "BLOCK",
    "Tool": "TOOL",
    "McpServer": "MCPSERVER",
}
_KIND_LIST: Final[dict[str, str]] = {
    "Agent": "AGENT",
    "Group": "GROUP",
    "Run": "RUN",
    "Message": "MESSAGE",
    "Block": "BLOCK",
    "Tool": "TOOL",
    "McpServer": "MCPSERVER",
}


def s(value: str) -> dict[str, str]:
    return {"S": value}


def n(value: float) -> dict[str, str]:
    return {"N": str(value)}


def tenant(tenant_id: str) -> str:
    return f"T#{tenant_id}#"


def record_key(kind: str, tenant_id: str, record_id: str) -> Item:
    """The main item of an agent, group, run or message."""
    return {"PK": s(f"{tenant(tenant_id)}{_KIND_PK[kind]}#{record_id}"), "SK": s(KIND_SK[kind])}


def run_pk(tenant_id: str, run_id: str) -> str:
    return f"{tenant(tenant_id)}RUN#{run_id}"


def log_key(tenant_id: str, run_id: str) -> Item:
    return {"PK": s(run_pk(tenant_id, run_id)), "SK": s(LOG_SK)}


def event_sk(last_seq: int, chunk: int | None = None) -> str:
    base = f"{EVENT_PREFIX}{last_seq:0{SEQ_DIGITS}d}"
    return base if chunk is None else f"{base}#{chunk:04d}"


def record_sk(first_seq: int) -> str:
    return f"{RECORD_PREFIX}{first_seq:0{SEQ_DIGITS}d}"


def step_key(tenant_id: str, run_id: str, key: str) -> Item:
    return {"PK": s(run_pk(tenant_id, run_id)), "SK": s(f"{STEP_PREFIX}{key}")}


def claim_key(tenant_id: str, group_id: str) -> Item:
    return {"PK": s(f"{tenant(tenant_id)}GROUP#{group_id}"), "SK": s(CLAIM_SK)}


def attempt_key(tenant_id: str, run_id: str) -> Item:
    return {"PK": s(run_pk(tenant_id, run_id)), "SK": s(ATTEMPT_SK)}


def queue_key(tenant_id: str, group_id: str) -> Item:
    return {"PK": s(f"{tenant(tenant_id)}GROUP#{group_id}"), "SK": s(QUEUE_SK)}


def run_slots_pk(tenant_id: str) -> str:
    return f"{tenant(tenant_id)}RUNSLOTS"


def run_slot_key(tenant_id: str, slot: int) -> Item:
    return {"PK": s(run_slots_pk(tenant_id)), "SK": s(f"SLOT#{slot:05d}")}


def idempotency_key(tenant_id: str, key: str) -> Item:
    return {"PK": s(f"{tenant(tenant_id)}IDEM#{key}"), "SK": s("IDEM")}


def part_sk(owner_sk: str, index: int) -> str:
    return f"{owner_sk}{PART_MARK}{index:04d}"


def order_key(order: str, record_id: str) -> str:
    return f"{order}#{record_id}"


def listing(kind: str, tenant_id: str, *, group_id: str | None = None, agent_id: str | None = None) -> str:
    """The GSI partition value listing `kind` for a tenant, a group or an agent."""
    scope = tenant(tenant_id)
    if group_id is not None:
        scope += f"GROUP#{group_id}#"
    elif agent_id is not None:
        scope += f"AGENT#{agent_id}#"
    return f"{scope}{_KIND_LIST[kind]}"


def unfinished(run_id: str) -> str:
    """The `unfinished` GSI partition of a run (spread over shards so no one partition takes every run's writes)."""
    return unfinished_shard(zlib.crc32(run_id.encode()) % UNFINISHED_SHARDS)


def unfinished_shard(shard: int) -> str:
    return f"UNFINISHED#{shard}"


def run_messages(tenant_id: str, run_id: str) -> str:
    return f"{run_pk(tenant_id, run_id)}#MESSAGE"
