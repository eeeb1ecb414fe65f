"""Versioned schema of the SQLite store; `PRAGMA user_version` records the last one applied."""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str]] = [
    (
        1,
        """
        CREATE TABLE agents (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX agents_by_time ON agents (tenant_id, created_at, id);
        CREATE TABLE groups (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX groups_by_time ON groups (tenant_id, created_at, id);
        CREATE TABLE runs (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL,
            group_id TEXT, agent_id TEXT, status TEXT NOT NULL, background INTEGER NOT NULL,
            version INTEGER NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX runs_unfinished ON runs (status, created_at);
        CREATE INDEX runs_by_time ON runs (tenant_id, created_at, id);
        CREATE INDEX runs_by_group ON runs (tenant_id, group_id, created_at, id);
        CREATE INDEX runs_by_agent ON runs (tenant_id, agent_id, created_at, id);
        CREATE TABLE steps (
            tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, step_key TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, run_id, step_key)
        );
        CREATE TABLE group_claims (
            tenant_id TEXT NOT NULL, group_id TEXT NOT NULL, run_id TEXT NOT NULL,
            PRIMARY KEY (tenant_id, group_id)
        );
        CREATE TABLE idempotency_keys (
            tenant_id TEXT NOT NULL, key TEXT NOT NULL, expires_at REAL NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, key)
        );
        CREATE TABLE messages (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, run_id TEXT NOT NULL, step_key TEXT NOT NULL,
            idx INTEGER NOT NULL, group_id TEXT, agent_id TEXT, position TEXT NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id),
            UNIQUE (tenant_id, run_id, step_key, idx)
        );
        CREATE INDEX messages_by_group ON messages (tenant_id, group_id, position);
        CREATE INDEX messages_by_agent ON messages (tenant_id, agent_id, position);
        CREATE INDEX messages_by_run ON messages (tenant_id, run_id, position);
        CREATE TABLE run_events (
            tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, first_seq INTEGER NOT NULL,
            last_seq INTEGER NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, run_id, first_seq)
        );
        """,
    ),
    (
        2,
        """
        CREATE TABLE blocks (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, label TEXT NOT NULL,
            version INTEGER NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX blocks_by_time ON blocks (tenant_id, created_at, id);
        """,
    ),
    (
        3,
        """
        CREATE TABLE tools (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, name TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX tools_by_time ON tools (tenant_id, created_at, id);
        CREATE INDEX tools_by_name ON tools (tenant_id, name);
        """,
    ),
    (
        4,
        """
        CREATE TABLE run_slots (
            tenant_id TEXT NOT NULL, slot INTEGER NOT NULL, run_id TEXT NOT NULL,
            PRIMARY KEY (tenant_id, slot)
        );
        """,
    ),
    (
        5,
        """
        CREATE TABLE mcp_servers (
            tenant_id TEXT NOT NULL, id TEXT NOT NULL, created_at TEXT NOT NULL, name TEXT NOT NULL,
            data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, id)
        );
        CREATE INDEX mcp_servers_by_time ON mcp_servers (tenant_id, created_at, id);
        CREATE INDEX mcp_servers_by_name ON mcp_servers (tenant_id, name);
        """,
    ),
    (
        6,
        """
        ALTER TABLE groups ADD COLUMN listed INTEGER NOT NULL DEFAULT 1;
        CREATE INDEX groups_listed ON groups (tenant_id, listed, created_at, id);
        """,
    ),
    (
        7,
        """
        CREATE TABLE group_queues (
            tenant_id TEXT NOT NULL, group_id TEXT NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL,
            PRIMARY KEY (tenant_id, group_id)
        );
        """,
    ),
    # messages are listed by group or by run only: the agent index cost every insert and served no read
    (8, "DROP INDEX IF EXISTS messages_by_agent;"),
    (
        9,
        """
        CREATE TABLE run_attempts (
            tenant_id TEXT NOT NULL, run_id TEXT NOT NULL, attempt TEXT NOT NULL,
            PRIMARY KEY (tenant_id, run_id)
        );
        """,
    ),
]
