"""The `store` port and its adapters."""

from chorus.store.base import Store
from chorus.store.records import AgentRecord, GroupRecord, MessageRecord, Page, RunRecord

__all__ = ["AgentRecord", "GroupRecord", "MessageRecord", "Page", "RunRecord", "Store"]
