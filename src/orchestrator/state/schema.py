"""The SQLite schema, its version, and the migrations from older versions.

The version lives in ``PRAGMA user_version``. A state written by an older orchestrator
is migrated in one transaction when it is opened for writing (a copy of it is kept
beside it first); a state from a newer one is refused, never guessed at.

Plans are versioned: ``plans`` keeps every plan an instance was last installed or updated
with (``instances.plan_version``), so a diff compares each instance with what it really
is, even after an update that stopped half way. ``operations`` and ``resources`` serve
workers on other hosts (``--executor celery``).
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable

SCHEMA_VERSION = 4

TABLES = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    plan TEXT NOT NULL,
    structure TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    leftovers TEXT,
    plan_version INTEGER NOT NULL DEFAULT 1
);
CREATE TABLE IF NOT EXISTS plans (
    deployment TEXT NOT NULL,
    version INTEGER NOT NULL,
    plan TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (deployment, version)
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
    plan_version INTEGER,
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
    error TEXT,
    request TEXT
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
""" + """
CREATE TABLE IF NOT EXISTS operations (
    deployment TEXT NOT NULL,
    instance TEXT NOT NULL,
    key TEXT NOT NULL,
    token TEXT NOT NULL,
    worker TEXT,
    claimed_until REAL,
    outcome TEXT,
    dispatched_at REAL NOT NULL,
    PRIMARY KEY (deployment, instance, key)
);
CREATE INDEX IF NOT EXISTS operations_by_worker ON operations (worker);
CREATE TABLE IF NOT EXISTS resources (
    deployment TEXT NOT NULL,
    digest TEXT NOT NULL,
    archive BLOB NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (deployment, digest)
);
"""
WORKER_TABLES = TABLES[TABLES.index("CREATE TABLE IF NOT EXISTS operations"):]
"""Version 4: what workers on other hosts need (operation dispatches, the blueprint's files)."""

def _relationship_keys_v3(db: sqlite3.Connection) -> None:
    """Version 3 names relationship steps ``establish:TARGET/TYPE`` (was ``establish:INDEX``),
    and records the plan each instance was installed with (version 1 of its deployment)."""
    from orchestrator.plan import Plan, relationship_keys

    indexed = re.compile(r"^(preconfigure|postconfigure|establish|unlink):(\d+)$")
    for deployment, text in db.execute("SELECT id, plan FROM deployments").fetchall():
        plan = Plan.from_json(text)
        db.execute("INSERT OR IGNORE INTO plans (deployment, version, plan, created_at) "
                   "SELECT id, 1, plan, updated_at FROM deployments WHERE id = ?", (deployment,))
        rows = db.execute("SELECT id, ops, state FROM instances WHERE deployment = ?", (deployment,)).fetchall()
        for iid, ops_json, state in rows:
            ops = json.loads(ops_json)
            inst = plan.instances.get(iid)
            keys = relationship_keys(inst) if inst is not None else []
            renamed = {}
            for key, value in ops.items():
                m = indexed.match(key)
                if m and int(m.group(2)) < len(keys):
                    key = f"{m.group(1)}:{keys[int(m.group(2))]}"
                renamed[key] = value
            version = None if state == "uninitialized" and not ops else 1
            db.execute("UPDATE instances SET ops = ?, plan_version = ? WHERE deployment = ? AND id = ?",
                       (json.dumps(renamed), version, deployment, iid))


# version -> what brings a state of that version to the next one (SQL, or a function of the connection)
MIGRATIONS: dict[int, tuple[str | Callable[[sqlite3.Connection], None], ...]] = {
    1: (
        "ALTER TABLE deployments ADD COLUMN leftovers TEXT",
        "ALTER TABLE instances ADD COLUMN error TEXT",
        "ALTER TABLE instances ADD COLUMN secret_keys TEXT",
        "ALTER TABLE locks ADD COLUMN expires_at REAL NOT NULL DEFAULT 0",
        "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    ),
    2: (
        "ALTER TABLE executions ADD COLUMN request TEXT",
        "ALTER TABLE deployments ADD COLUMN plan_version INTEGER NOT NULL DEFAULT 1",
        "ALTER TABLE instances ADD COLUMN plan_version INTEGER",
        "CREATE TABLE IF NOT EXISTS plans (deployment TEXT NOT NULL, version INTEGER NOT NULL, "
        "plan TEXT NOT NULL, created_at REAL NOT NULL, PRIMARY KEY (deployment, version))",
        _relationship_keys_v3,
    ),
    3: tuple(statement for statement in WORKER_TABLES.split(";") if statement.strip()),
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
        for step in MIGRATIONS[version]:
            if callable(step):
                step(db)
            else:
                db.execute(step)
        version += 1
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
