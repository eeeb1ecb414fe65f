"""The `store` port and its adapters."""

from chorus.store.base import Store
from chorus.store.records import (
    AgentRecord,
    GroupRecord,
    IdempotencyRecord,
    MessageRecord,
    Page,
    RunRecord,
    StepRecord,
)

__all__ = [
    "AgentRecord",
    "GroupRecord",
    "IdempotencyRecord",
    "MessageRecord",
    "Page",
    "RunRecord",
    "StepRecord",
    "Store",
]
