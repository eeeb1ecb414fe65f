"""The bounds on tenant input that drives work: one table, so an operator reads them in one place.

Every number a request can send that makes the server loop, sleep, allocate or
store is capped here; the schemas (`chorus.schemas`) and the scripted model
(`chorus.llm.scripted`) take their caps from this module. The bounds are
generous for real use (a Letta client never comes near them) and small enough
that one request cannot hold a worker for minutes or fill memory or disk. The
size of a whole request body is a setting (`max_body_bytes`), not a constant:
an operator may need to raise it for large tool sources or memory blocks.
"""

from __future__ import annotations

MAX_JSON_DEPTH = 64
"""Nesting of arrays and objects in a JSON body (deeper input could exhaust the stack of whatever serialises it)."""

MAX_CURSOR = 2**63 - 1
"""Largest integer cursor (`starting_after`, `Last-Event-ID`): what SQLite and DynamoDB numbers hold."""

MAX_PAGE_LIMIT = 1000
"""Largest `limit` of a listing."""

MAX_STEPS = 10_000
"""`max_steps` of one message request (model calls per agent turn)."""

MAX_TURNS = 10_000
"""`max_turns` of a round-robin or dynamic group."""

MAX_LIST_ITEMS = 500
"""Length of any list in a request: `messages`, `agent_ids`, `tool_ids`, `block_ids`, `memory_blocks`, approvals,
tags, tool rules, client tools."""

MAX_TEXT_CHARS = 1_000_000
"""Length of a free-text field with no tighter bound (a system prompt, a description, a message's text)."""

MAX_BLOCK_CHARS = 1_000_000
"""Largest `limit` (and so value) of a memory block."""

MAX_TOOL_SOURCE_CHARS = 200_000
"""Length of a custom tool's Python source."""

MAX_SCRIPTED_TOKENS = 100_000
"""`metadata.scripted.tokens` and `error_after_tokens`: tokens of one offline-model reply."""

MAX_SCRIPTED_DELAY_S = 60.0
"""`metadata.scripted.delay_s`: the offline model's pause before each token."""

MAX_SCRIPTED_ITEMS = 1000
"""Length of `metadata.scripted.replies`, `steps` and of each list of `calls`."""

MAX_SCRIPTED_TEXT_CHARS = 100_000
"""Length of one scripted reply or reasoning text."""

MAX_LISTING_CHARS = 8_000_000
"""Characters (about bytes) of one listing response: a page that would be longer ends early, after at least
one item, and the client reads on from its last id (`after`), as with any cursor."""

MAX_MCP_SERVERS = 100
"""MCP servers one tenant may register."""

MAX_MCP_TOOLS = 500
"""Tools one MCP server may list (a refresh of a server listing more is refused)."""

MAX_MCP_HEADERS = 50
"""Custom headers of one MCP server."""

MAX_MCP_SECRET_CHARS = 8192
"""Length of an MCP server's auth token or of one custom header value."""

MAX_MCP_REPLY_BYTES = 16 * 1024 * 1024
"""Bytes of one HTTP response of an MCP server read at most (before `return_char_limit` cuts what the model reads)."""

MAX_URL_CHARS = 2048
"""Length of a URL a tenant gives (an MCP server's)."""

MAX_WAITING_RUNS = 100
"""Runs that may wait in one group's line (`multitask_strategy=enqueue`); one more is a 409."""
