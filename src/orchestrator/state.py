"""SQLite state: deployments, node instances, executions, events and locks.

One file per state directory, WAL mode. Every state change of an instance (with its
runtime properties and the event that reports it) is one transaction, and an instance
is marked in progress *before* its hook runs, so after a crash the state says which
operations finished, which may have had side effects, and which never started.
``synchronous=NORMAL`` survives a killed process; set ``ORCHESTRATOR_SYNC=FULL`` to
also survive a power cut at the price of an fsync per transaction.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs

from orchestrator.errors import OrchestratorError, StateLockedError

SCHEMA = """
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    blueprint TEXT NOT NULL,
    inputs TEXT NOT NULL,
    plan TEXT NOT NULL,
    structure TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS instances (
    deployment TEXT NOT NULL,
    id TEXT NOT NULL,
    node TEXT NOT NULL,
    state TEXT NOT NULL,
    ops TEXT NOT NULL,
    runtime TEXT NOT NULL,
    updated_at REAL NOT NULL,
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
    acquired_at REAL NOT NULL
);
"""

DEFAULT_STATE = Path(".orchestrator") / "state.db"
SCHEMA_VERSION = 1


@attrs.define(slots=True)
class InstanceRow:
    id: str
    node: str
    state: str
    ops: dict[str, str]
    runtime: dict[str, Any]
    updated_at: float = 0.0


@attrs.define(slots=True)
class DeploymentRow:
    id: str
    blueprint: str
    inputs: dict[str, Any]
    plan: str
    structure: str
    created_at: float
    updated_at: float


@attrs.define(slots=True)
class Event:
    """One deployment event: an operation's progress, a retry, a failure, or a plugin log record."""

    ts: float
    deployment: str
    execution: int | None
    instance: str | None
    operation: str | None
    plugin: str | None
    type: str  # workflow_started, operation_started, operation_succeeded, ..., log
    level: str
    message: str
    id: int | None = None  # set once stored

    def as_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _proc_start(pid: int) -> str:
    """The kernel's start time of a process: tells a live lock holder from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, proc_start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not proc_start or _proc_start(pid) in ("", proc_start)


class StateStore:
    """All reads and writes of one state file; safe to share between threads."""

    def __init__(self, path: str | Path = DEFAULT_STATE) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        sync = os.environ.get("ORCHESTRATOR_SYNC", "NORMAL").upper()
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync == 'FULL' else 'NORMAL'}")
        self._db.execute("PRAGMA foreign_keys=OFF")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        has_tables = self._db.execute("SELECT count(*) FROM sqlite_master WHERE name = 'instances'").fetchone()[0]
        if has_tables and version != SCHEMA_VERSION:
            raise OrchestratorError(f"{self.path} was written by an incompatible orchestrator "
                                    f"(schema {version}, this one reads {SCHEMA_VERSION})")
        self._db.executescript(SCHEMA)
        self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- deployments ---------------------------------------------------------------

    def get_deployment(self, deployment: str) -> DeploymentRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT id, blueprint, inputs, plan, structure, created_at, updated_at "
                "FROM deployments WHERE id = ?", (deployment,)).fetchone()
        if row is None:
            return None
        return DeploymentRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6])

    def deployment_ids(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM deployments ORDER BY created_at")]

    def save_deployment(self, deployment: str, blueprint: str, inputs: dict[str, Any], plan: str,
                        structure: str, instances: Iterable[tuple[str, str]]) -> None:
        """Create or update a deployment; instances new to the plan start uninitialized."""
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO deployments (id, blueprint, inputs, plan, structure, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET blueprint = excluded.blueprint, "
                "inputs = excluded.inputs, plan = excluded.plan, structure = excluded.structure, "
                "updated_at = excluded.updated_at",
                (deployment, blueprint, json.dumps(inputs), plan, structure, now, now))
            wanted = dict(instances)
            existing = {r[0] for r in db.execute("SELECT id FROM instances WHERE deployment = ?", (deployment,))}
            db.executemany("DELETE FROM instances WHERE deployment = ? AND id = ?",
                           [(deployment, i) for i in existing - wanted.keys()])
            db.executemany(
                "INSERT INTO instances (deployment, id, node, state, ops, runtime, updated_at) "
                "VALUES (?, ?, ?, 'uninitialized', '{}', '{}', ?)",
                [(deployment, i, node, now) for i, node in wanted.items() if i not in existing])

    def delete_deployment(self, deployment: str) -> None:
        with self.transaction() as db:
            for table in ("instances", "events", "executions", "locks"):
                db.execute(f"DELETE FROM {table} WHERE deployment = ?", (deployment,))
            db.execute("DELETE FROM deployments WHERE id = ?", (deployment,))

    # -- instances -----------------------------------------------------------------

    def instances(self, deployment: str) -> dict[str, InstanceRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, node, state, ops, runtime, updated_at FROM instances WHERE deployment = ?",
                (deployment,)).fetchall()
        return {r[0]: InstanceRow(r[0], r[1], r[2], json.loads(r[3]), json.loads(r[4]), r[5]) for r in rows}

    def record(self, deployment: str, instance: str, state: str, ops_json: str, runtime_json: str | None,
               events: list[tuple]) -> None:
        """One atomic write: state and finished operations, runtime properties if changed, events.

        ``events`` are rows as ``EventSink.row`` makes them. This is the engine's hot path
        (about one call per operation): no context manager, one ``executemany``.
        """
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.execute("UPDATE instances SET state = ?, ops = ?, runtime = coalesce(?, runtime), updated_at = ? "
                           "WHERE deployment = ? AND id = ?",
                           (state, ops_json, runtime_json, time.time(), deployment, instance))
                if events:
                    db.executemany(_INSERT_EVENT, events)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def save_runtime(self, deployment: str, instance: str, runtime_json: str) -> None:
        with self._lock:
            self._db.execute("UPDATE instances SET runtime = ?, updated_at = ? WHERE deployment = ? AND id = ?",
                             (runtime_json, time.time(), deployment, instance))

    # -- events --------------------------------------------------------------------

    def add_event(self, event: tuple) -> None:
        """``event`` is (ts, deployment, execution, instance, operation, plugin, type, level, message)."""
        with self._lock:
            self._db.execute(_INSERT_EVENT, event)

    def events(self, deployment: str, after: int = 0, execution: int | None = None) -> list[Event]:
        sql = ("SELECT ts, deployment, execution, instance, operation, plugin, type, level, message, id "
               "FROM events WHERE deployment = ? AND id > ?")
        args: list[Any] = [deployment, after]
        if execution is not None:
            sql += " AND execution = ?"
            args.append(execution)
        with self._lock:
            return [Event(*r) for r in self._db.execute(sql + " ORDER BY id", args)]

    # -- executions and locks ------------------------------------------------------

    def start_execution(self, deployment: str, workflow: str) -> int:
        """Take the deployment's lock (or a dead holder's) and record a new execution."""
        pid, host, start = os.getpid(), socket.gethostname(), _proc_start(os.getpid())
        now = time.time()
        with self.transaction() as db:
            row = db.execute("SELECT execution, pid, host, proc_start, workflow, acquired_at FROM locks "
                             "WHERE deployment = ?", (deployment,)).fetchone()
            if row is not None:
                execution, hpid, hhost, hstart, hworkflow, since = row
                if hhost != host or _alive(hpid, hstart):
                    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(since))
                    raise StateLockedError(
                        f"deployment '{deployment}' is busy: execution {execution} ({hworkflow}) "
                        f"of pid {hpid} on {hhost}, running since {when}")
                db.execute("UPDATE executions SET status = 'interrupted', ended_at = ? WHERE id = ? "
                           "AND status = 'started'", (now, execution))
                db.execute("DELETE FROM locks WHERE deployment = ?", (deployment,))
            cur = db.execute("INSERT INTO executions (deployment, workflow, status, pid, host, started_at) "
                             "VALUES (?, ?, 'started', ?, ?, ?)", (deployment, workflow, pid, host, now))
            execution_id = int(cur.lastrowid or 0)
            db.execute("INSERT INTO locks (deployment, execution, pid, host, proc_start, workflow, acquired_at) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (deployment, execution_id, pid, host, start, workflow, now))
        return execution_id

    def end_execution(self, execution: int, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE executions SET status = ?, ended_at = ?, error = ? WHERE id = ?",
                       (status, time.time(), error, execution))
            db.execute("DELETE FROM locks WHERE execution = ?", (execution,))

    def executions(self, deployment: str) -> list[tuple]:
        with self._lock:
            return self._db.execute(
                "SELECT id, workflow, status, started_at, ended_at, error FROM executions "
                "WHERE deployment = ? ORDER BY id", (deployment,)).fetchall()


_INSERT_EVENT = ("INSERT INTO events (ts, deployment, execution, instance, operation, plugin, type, level, message) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
