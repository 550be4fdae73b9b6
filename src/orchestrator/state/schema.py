"""The SQLite schema, its version, and the migrations from older versions.

The version lives in ``PRAGMA user_version``. A state written by an older orchestrator
is migrated in one transaction when it is opened for writing (a copy of it is kept
beside it first); a state from a newer one is refused, never guessed at.
"""

from __future__ import annotations

import sqlite3

SCHEMA_VERSION = 2

TABLES = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    plan TEXT NOT NULL,
    structure TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    leftovers TEXT
);
CREATE TABLE IF NOT EXISTS instances (
    deployment TEXT NOT NULL,
    id TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    ops TEXT NOT NULL,
    runtime TEXT NOT NULL,
    updated_at REAL NOT NULL,
    error TEXT,
    secret_keys TEXT,
    PRIMARY KEY (deployment, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS executions (
    id INTEGER PRIMARY KEY,
    deployment TEXT NOT NULL,
    workflow TEXT NOT NULL,
    status TEXT NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    deployment TEXT NOT NULL,
    execution INTEGER,
    instance TEXT,
    operation TEXT,
    plugin TEXT,
    type TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_deployment ON events (deployment, id);
CREATE TABLE IF NOT EXISTS locks (
    deployment TEXT PRIMARY KEY,
    execution INTEGER NOT NULL,
    pid INTEGER NOT NULL,
    host TEXT NOT NULL,
    proc_start TEXT NOT NULL,
    workflow TEXT NOT NULL,
    acquired_at REAL NOT NULL,
    expires_at REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""

# version -> statements that bring a state of that version to the next one
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        "ALTER TABLE deployments ADD COLUMN leftovers TEXT",
        "ALTER TABLE instances ADD COLUMN error TEXT",
        "ALTER TABLE instances ADD COLUMN secret_keys TEXT",
        "ALTER TABLE locks ADD COLUMN expires_at REAL NOT NULL DEFAULT 0",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
}


def stored_version(db: sqlite3.Connection) -> int | None:
    """The schema version of an existing state; None for an empty database."""
    has_tables = db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'instances'").fetchone()[0]
    return int(db.execute("PRAGMA user_version").fetchone()[0]) if has_tables else None


def create(db: sqlite3.Connection) -> None:
    """The current schema in an empty database (inside the caller's transaction)."""
    for statement in TABLES.split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a state from ``version`` to the current one (inside the caller's transaction)."""
    while version < SCHEMA_VERSION:
        for statement in MIGRATIONS[version]:
            db.execute(statement)
        version += 1
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
