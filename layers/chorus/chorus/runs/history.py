"""Loading the history a run continues: its newest part, as far back as a context can reach.

A group's history only grows, so a send must not read all of it. Pages are
read newest first and reading stops at the first of: the group's first
message; the message up to which the latest summary covers (older messages
are in the summary, see `chorus.engine.compaction`); or, while no summary has
been met, a window's worth of tokens (older messages could not be in any
agent's context anyway; compaction summarises what was read). So what a send
reads is bounded by its agents' context windows, not by the history's length;
and it reads the stored records as decoded JSON (`Store.history_page`), not
validated again.
"""

from __future__ import annotations

from typing import Any

from chorus.engine.compaction import covered_until, message_tokens
from chorus.store.base import Store
from chorus.store.records import Page

FIRST_PAGE = 100
"""Messages of the first read: most sends need no other."""
PAGE = 500
"""Messages of each later read."""

SUMMARY_REACH = 4
"""Windows of tokens a read goes on for to reach the message a summary ends at (by construction it is
within about one: a guard against a history written by another build)."""


async def load_tail(store: Store, tenant_id: str, key: dict[str, Any], window_tokens: int) -> list[dict[str, Any]]:
    """The newest message records (as `MessageRecord` dicts) of the history named by `key` (`group_id`
    or `run_id`), oldest first."""
    out: list[dict[str, Any]] = []
    after: str | None = None
    covered: str | None = None
    tokens = 0
    limit = FIRST_PAGE
    while True:
        page = Page(after=after, limit=limit, order="desc")
        batch = await store.history_page(tenant_id, page, **key)
        for record in batch:
            out.append(record)
            message = record["message"]
            tokens += message_tokens(message)
            if covered is None:
                covered = covered_until(message)
                if covered is None and tokens > window_tokens:
                    return out[::-1]
            elif message.get("id") == covered or tokens > SUMMARY_REACH * window_tokens:
                return out[::-1]
        if len(batch) < page.limit:
            return out[::-1]
        after = batch[-1]["id"]  # `after` in the listing's (newest first) order: older
        limit = PAGE
