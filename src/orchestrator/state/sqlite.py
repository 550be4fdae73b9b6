"""SQLite state: deployments, node instances, executions, events and locks.

One file per state directory, WAL mode, created 0600 (its directory 0700 when we create
it): runtime properties may be sensitive. Every state change of an instance (with its
runtime properties and the events that report it) is one transaction, and an instance
is marked in progress *before* its hook runs, so after a crash the state says which
operations finished, which may have had side effects, and which never started.
``synchronous=NORMAL`` survives a killed process; ``ORCHESTRATOR_SYNC=FULL`` also
survives a power cut at the price of an fsync per transaction.

Every ``sqlite3`` error leaves as a ``StateError`` naming the file and what to do, and
a store opened for reading never creates or changes anything.
"""

from __future__ import annotations

import collections
import functools
import json
import os
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from itertools import chain
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote

from orchestrator.errors import (
    DamagedValue,
    LockLostError,
    StateError,
    StateLockedError,
    StatePathError,
)
from orchestrator.state import schema
from orchestrator.state.checkpointer import BACKSTOP_PAGES, Checkpointer
from orchestrator.state.leases import Holder, busy_message, lease_seconds, why_free
from orchestrator.state.location import DEFAULT_STATE
from orchestrator.state.protocol import BLOB_DAYS, WritesOne
from orchestrator.state.records import (
    INSTANCE_COLUMNS,
    DeploymentRow,
    Event,
    InstanceRow,
    InstanceWrite,
    LockInfo,
    OperationOutcome,
    instance_row,
    merged_runtime,
)
from orchestrator.state.safety import (
    Lineage,
    backup_path,
    lineage_path,
    lineage_problem,
    lineage_stamp,
    read_lineage,
    restore_backup,
    take_backup,
    write_lineage,
)

SCHEMA_VERSION = schema.SCHEMA_VERSION

F = TypeVar("F", bound=Callable[..., Any])


DAMAGE = (sqlite3.Error, OSError, UnicodeDecodeError, json.JSONDecodeError, DamagedValue)
"""What reading a state file can raise: each is said as a ``StateError`` (``explain``)."""


def explain(path: Path, exc: BaseException) -> StateError:
    """A ``sqlite3``/OS error as one sentence a user can act on."""
    if isinstance(exc, UnicodeDecodeError):  # SQLite keeps no checksums: a flipped byte shows as bad text
        return StateError(damaged_message(path, f"a stored text is not UTF-8 ({exc.reason} at byte {exc.start})"))
    if isinstance(exc, json.JSONDecodeError):
        return StateError(damaged_message(path, f"a stored value is not JSON ({exc})"))
    if isinstance(exc, DamagedValue):
        return StateError(damaged_message(path, str(exc)))
    text = str(exc)
    low = text.lower()
    if "unable to open" in low and path.exists() and not _writable(path):
        low = "readonly"
    if "not a database" in low or "malformed" in low or "file is encrypted" in low:
        return StateError(damaged_message(path, text))
    if "could not decode to utf-8" in low:
        return StateError(damaged_message(path, f"a stored text is not UTF-8 ({text.split(' with text')[0]})"))
    if "readonly" in low or "read-only" in low or isinstance(exc, PermissionError):
        return StateError(f"cannot write the state {path}: the file or its directory is read-only ({text}); "
                          f"fix its permissions or choose another file with --state")
    if "disk is full" in low or getattr(exc, "errno", None) == 28:
        return StateError(f"the disk holding the state {path} is full ({text}); free some space and run the "
                          f"command again: nothing recorded before this point is lost")
    if "database is locked" in low or "busy" in low:
        return StateError(f"the state {path} stayed locked by another process for too long ({text}); "
                          f"run the command again")
    if "unable to open" in low:
        return StateError(f"cannot open the state {path} ({text}): check that its directory exists and is "
                          f"readable")
    return StateError(f"the state {path} cannot be used: {text}")


def _writable(path: Path) -> bool:
    """Whether this process may write the file and create its -wal/-shm beside it."""
    return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK)


def damaged_message(path: Path, detail: str) -> str:
    backup = backup_path(path)
    advice = (f"the state as it was when the last execution started is in {backup}: rerun with "
              f"--state-recover to put it back" if backup.is_file() else f"there is no backup ({backup})")
    return f"the state {path} is damaged ({detail}); {advice}"


def _translated(method: F) -> F:
    """Let no ``sqlite3`` error out of a store method: each becomes a ``StateError``."""

    @functools.wraps(method)
    def wrapper(self: SqliteStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except DAMAGE as exc:
            raise explain(self.path, exc) from exc

    return wrapper  # type: ignore[return-value]


class SqliteStore(WritesOne):
    """All reads and writes of one state file; safe to share between threads.

    ``create=False`` opens an existing state for reading only: a missing file is a
    ``StatePathError`` ("no state at PATH") and nothing is ever written. ``recover=True``
    puts the backup back when the state is damaged or lost deployments it had.
    """

    def __init__(self, path: str | Path = DEFAULT_STATE, *, create: bool = True, recover: bool = False) -> None:
        self.path = Path(path)
        self.location = str(path)
        self.writable = create
        self.recovered: str | None = None  # what --state-recover did, for the user
        self._lock = threading.RLock()
        self._file: tuple[int, int] | None = None  # this store's entry in _OPEN_FILES
        self._lineage_id: str | None = None
        self._deployments_changed = False
        self._empty = False
        self._holder = Holder.current()
        self._checkpointer: Checkpointer | None = None  # while executions run (_checkpoint_aside)
        self._executions = 0
        if self.path.is_dir():
            raise StatePathError(f"--state {self.path} is a directory; give the state file, e.g. "
                                 f"{self.path / 'state.db'}")
        if not self.path.exists():
            lineage = read_lineage(self.path)
            if lineage is not None and lineage.deployments:  # it was there: deleted or moved away
                if not recover:
                    raise StateError(f"the state {self.path} is missing, but it held deployments "
                                     f"({', '.join(sorted(lineage.deployments))}). {_recovery_advice(self.path)}")
                self._recover()
                return
            if not create:
                raise StatePathError(f"no state at {self.path} (check --state; install creates it)")
            self._create_file()
        try:
            self._attach()
            self._open(recover)
            if recover and not self.recovered:
                self._check_values()
        except DAMAGE as exc:
            self._detach()
            error = explain(self.path, exc)
            if recover and "damaged" in str(error):
                self._recover()
                return
            raise error from exc

    # -- opening ---------------------------------------------------------------------

    def _create_file(self) -> None:
        parent = self.path.parent
        try:
            if not parent.exists():
                parent.mkdir(mode=0o700, parents=True)
            os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass  # another process created it first
        except OSError as exc:
            raise explain(self.path, exc) from exc

    def _attach(self) -> None:
        """Check the file's size, then connect: the raw read only while this process has no
        connection on the file (see ``_OpenFiles``)."""
        with _OPEN_FILES:
            if not _OPEN_FILES.has(self.path):
                _check_size(self.path)
            self._db = self._connect()
            self._file = _OPEN_FILES.opened(self.path)

    def _detach(self) -> None:
        """Close the connection (if any) and let the registry know."""
        with self._lock, _OPEN_FILES:
            try:
                if self._checkpointer is not None:
                    self._checkpointer, checkpointer = None, self._checkpointer
                    checkpointer.close()
                db = getattr(self, "_db", None)
                if db is not None:
                    db.close()  # closing twice is harmless
            finally:
                _OPEN_FILES.closed(self._file)
                self._file = None

    def _connect(self) -> sqlite3.Connection:
        """Read-write when writing (or when we may: SQLite then tidies the WAL on close); a query on
        a file it may not write reads it read-only, or as immutable when it cannot even create the
        WAL index beside it (a read-only directory) and no write is pending in a WAL file."""
        uri = f"file:{quote(str(self.path.resolve()))}"
        if self.writable or _writable(self.path):
            uri += "?mode=rw"
        else:
            wal = self.path.with_name(self.path.name + "-wal")
            pending = wal.exists() and wal.stat().st_size > 0
            uri += "?mode=ro" if pending or os.access(self.path.parent, os.W_OK) else "?mode=ro&immutable=1"
        self._uri = uri
        db = sqlite3.connect(uri, uri=True, timeout=30, isolation_level=None, check_same_thread=False)
        sync = os.environ.get("ORCHESTRATOR_SYNC", "NORMAL").upper()
        db.execute(f"PRAGMA synchronous={'FULL' if sync == 'FULL' else 'NORMAL'}")
        return db

    def _open(self, recover: bool) -> None:
        db = self._db
        version = schema.stored_version(db)
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(f"the state {self.path} was written by a newer orchestrator (schema {version}; "
                             f"this one reads up to {SCHEMA_VERSION}): upgrade orchestrator-engine to use it")
        current = version == SCHEMA_VERSION
        lineage, ids, problem = self._check_lineage(version)
        if problem is not None and version in (None, SCHEMA_VERSION):
            if recover:
                self._recover()
                return
            raise StateError(f"the state {self.path} is not the one that was used: {problem}. "
                             f"{_recovery_advice(self.path)}")
        if not current:
            if version is None and not self.writable:
                self._empty = True  # an empty file read by a query: nothing in it, nothing written
                return
            if not (self.writable or os.access(self.path, os.W_OK)):
                raise StateError(f"the state {self.path} was written by an older orchestrator (schema {version}) "
                                 f"and must be upgraded, but it is read-only for this user")
            self._initialise(version)
        self._lineage_id = self._meta("lineage")
        if self.writable:
            self._secure()
            if (lineage is None and ids) or (lineage is not None and (
                    lineage.id != self._lineage_id or lineage.deployments != ids)):
                self._sync_lineage()

    def _check_lineage(self, version: int | None) -> tuple[Lineage | None, set[str], str | None]:
        """The lineage, the deployments, and what is wrong (None: nothing), read consistently.

        Writers keep the lineage a subset of the committed deployments at every instant (it
        forgets one before its deletion commits, learns one after its creation commits, and
        is only written under the database's write lock). So a lineage read *before* the
        deployments is consistent with them if no writer replaced it meanwhile; when one did
        (another process created or deleted a deployment), read both again, rather than
        mistake the other process's deletion for a loss.
        """
        current = version == SCHEMA_VERSION
        for _ in range(50):
            before = lineage_stamp(self.path)
            lineage = read_lineage(self.path)
            ids = set(self._ids()) if version is not None else set()
            problem = lineage_problem(lineage, self._meta("lineage") if current else None, ids)
            if problem is None or lineage_stamp(self.path) == before:
                break
            time.sleep(0.01)
        return lineage, ids, problem

    def _ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT id FROM deployments ORDER BY created_at")]

    def _initialise(self, version: int | None) -> None:
        """Create the schema in a new state, or migrate an old one (keeping a copy of it)."""
        db = self._db
        with self._lock:
            if version is None:
                db.execute("PRAGMA journal_mode=WAL")  # before the schema: no rollback journal syncs
            db.execute("BEGIN IMMEDIATE")
            try:
                current = schema.stored_version(db)  # another process may have done it meanwhile
                if current is None:
                    schema.create(db)
                elif current < SCHEMA_VERSION:
                    take_backup_as(self.path, self.path.with_name(f"{self.path.name}.v{current}"))
                    schema.migrate(db, current)
                if db.execute("SELECT value FROM meta WHERE key = 'lineage'").fetchone() is None:
                    db.execute("INSERT INTO meta (key, value) VALUES ('lineage', ?)", (uuid.uuid4().hex,))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _secure(self) -> None:
        """Runtime properties may be secret: a state we write is readable by its owner only."""
        if not self.writable:
            return
        for suffix in ("", "-wal", "-shm"):
            file = self.path.with_name(self.path.name + suffix)
            try:
                st = file.stat()
                if st.st_mode & 0o077 and st.st_uid == os.getuid():
                    os.chmod(file, 0o600)
            except OSError:
                pass

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def _sync_lineage(self) -> None:
        """Make the lineage hold the committed deployments, under the database's write lock.

        Under the lock, no other process commits between reading the deployments and
        replacing the file: a lineage written from a stale read could name a deployment that
        another process deleted meanwhile, and every later open would refuse the state.
        """
        if self._lineage_id is None:
            return
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                write_lineage(self.path, Lineage(self._lineage_id, frozenset(self._ids())))
            finally:
                db.execute("COMMIT")  # it wrote nothing: only its lock mattered

    def _check_values(self) -> None:
        """For ``--state-recover``: read every stored text and parse every JSON value. SQLite keeps
        no checksums, so a damaged value is found only when something reads it (raises what
        ``explain`` calls damage)."""
        from orchestrator.plan import Plan

        db = self._db
        if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
            raise sqlite3.DatabaseError("database disk image is malformed (quick_check)")
        for table, columns in _JSON_COLUMNS.items():
            for row in db.execute(f"SELECT {', '.join(columns)} FROM {table}"):
                for column, value in zip(columns, row, strict=True):
                    if value:
                        Plan.from_json(value) if column == "plan" else json.loads(value)
        for table in ("executions", "events", "locks", "meta"):
            for _ in db.execute(f"SELECT * FROM {table}"):  # decoding each text is the check
                pass

    def _recover(self) -> None:
        """Put the backup in place, forget the lineage that no longer holds, and open it again."""
        self._detach()
        self.recovered = restore_backup(self.path)
        lineage_path(self.path).unlink(missing_ok=True)
        writable, self.writable = self.writable, True
        try:
            self._attach()
            self._open(recover=False)
        finally:
            self.writable = writable

    @_translated
    def close(self) -> None:
        self._detach()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; nested use joins the outer one (all or nothing)."""
        with self._lock:
            db = self._db
            if db.in_transaction:
                yield db
                return
            try:
                db.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise explain(self.path, exc) from exc
            try:
                yield db
            except BaseException as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise explain(self.path, exc) from exc
                raise
            try:
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                raise explain(self.path, exc) from exc
            if self._deployments_changed:
                self._deployments_changed = False
                try:
                    self._sync_lineage()
                except (sqlite3.Error, OSError) as exc:
                    raise explain(self.path, exc) from exc

    # -- deployments ---------------------------------------------------------------

    @_translated
    def get_deployment(self, deployment: str) -> DeploymentRow | None:
        if self._empty:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT id, blueprint, inputs, plan, structure, created_at, updated_at, leftovers, plan_version "
                "FROM deployments WHERE id = ?", (deployment,)).fetchone()
        if row is None:
            return None
        return DeploymentRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6],
                             json.loads(row[7]) if row[7] else [], row[8])

    @_translated
    def plan_version(self, deployment: str, version: int) -> str | None:
        """The plan (JSON) of one of the deployment's versions; None when no instance needs it any more."""
        with self._lock:
            row = self._db.execute("SELECT plan FROM plans WHERE deployment = ? AND version = ?",
                                   (deployment, version)).fetchone()
        return row[0] if row else None

    @_translated
    def deployment_ids(self) -> list[str]:
        if self._empty:
            return []
        with self._lock:
            return self._ids()

    @_translated
    def save_deployment(self, deployment: str, blueprint: str, inputs: dict[str, Any], plan: str,
                        structure: str, instances: Iterable[tuple[str, str]]) -> int:
        """Create or update a deployment; returns its plan's version (a new one if the plan changed).

        Instances new to the plan start uninitialized. Instances the plan no longer has stay
        until they are gone (an update deletes them first), unless they never existed.
        """
        now = time.time()
        with self.transaction() as db:
            current = db.execute("SELECT plan, plan_version FROM deployments WHERE id = ?", (deployment,)).fetchone()
            if current is None:
                self._deployments_changed = True
                version = 1
            else:
                version = current[1] if current[0] == plan else current[1] + 1
            db.execute(
                "INSERT INTO deployments (id, blueprint, inputs, plan, structure, created_at, updated_at, "
                "plan_version) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
                "blueprint = excluded.blueprint, inputs = excluded.inputs, plan = excluded.plan, "
                "structure = excluded.structure, updated_at = excluded.updated_at, "
                "plan_version = excluded.plan_version",
                (deployment, blueprint, json.dumps(inputs), plan, structure, now, now, version))
            db.execute("INSERT OR REPLACE INTO plans (deployment, version, plan, created_at) VALUES (?, ?, ?, ?)",
                       (deployment, version, plan, now))
            wanted = dict(instances)
            existing = {r[0]: r[1] for r in db.execute(
                "SELECT id, state FROM instances WHERE deployment = ?", (deployment,))}
            db.executemany("DELETE FROM instances WHERE deployment = ? AND id = ?",
                           [(deployment, i) for i, state in existing.items()
                            if i not in wanted and state in ("uninitialized", "deleted")])
            db.executemany(
                "INSERT INTO instances (deployment, id, node, state, ops, runtime, updated_at) "
                "VALUES (?, ?, ?, 'uninitialized', '{}', '{}', ?)",
                [(deployment, i, node, now) for i, node in wanted.items() if i not in existing])
        return version

    @_translated
    def settle_plan(self, deployment: str, version: int, unchanged: Iterable[str], wanted: set[str]) -> None:
        """After an update: instances it found unchanged are of the new version too; instances
        gone from the plan (not in ``wanted``) are forgotten; plan versions no instance needs
        are dropped."""
        with self.transaction() as db:
            db.executemany("UPDATE instances SET plan_version = ? WHERE deployment = ? AND id = ? AND "
                           "plan_version IS NOT NULL", [(version, deployment, i) for i in unchanged])
            rows = db.execute("SELECT id, state FROM instances WHERE deployment = ?", (deployment,)).fetchall()
            db.executemany("DELETE FROM instances WHERE deployment = ? AND id = ?",
                           [(deployment, i) for i, state in rows
                            if i not in wanted and state in ("uninitialized", "deleted")])
            db.execute("DELETE FROM plans WHERE deployment = ? AND version != ? AND version NOT IN "
                       "(SELECT plan_version FROM instances WHERE deployment = ? AND plan_version IS NOT NULL)",
                       (deployment, version, deployment))

    @_translated
    def instance_versions(self, deployment: str) -> dict[str, int | None]:
        """Each instance's plan version (None: never installed), without reading the rest of it."""
        with self._lock:
            return dict(self._db.execute("SELECT id, plan_version FROM instances WHERE deployment = ?",
                                         (deployment,)).fetchall())

    @_translated
    def set_leftovers(self, deployment: str, leftovers: list[dict[str, Any]]) -> None:
        """Record what an ``uninstall --ignore-failures`` may have left behind (``[]`` clears it)."""
        with self.transaction() as db:
            db.execute("UPDATE deployments SET leftovers = ? WHERE id = ?",
                       (json.dumps(leftovers) if leftovers else None, deployment))

    @_translated
    def delete_deployment(self, deployment: str) -> None:
        with self.transaction() as db:
            # The lineage forgets it first: a crash before the commit must not look like a loss.
            self._deployments_changed = True
            if self._lineage_id is not None:
                write_lineage(self.path, Lineage(self._lineage_id,
                                                 frozenset(self.deployment_ids()) - {deployment}))
            for table in ("instances", "events", "executions", "locks", "plans", "operations", "resources"):
                db.execute(f"DELETE FROM {table} WHERE deployment = ?", (deployment,))
            db.execute("DELETE FROM deployments WHERE id = ?", (deployment,))

    # -- instances -----------------------------------------------------------------

    @_translated
    def instances(self, deployment: str, ids: Iterable[str] | None = None) -> dict[str, InstanceRow]:
        """The deployment's instances (only ``ids`` when given)."""
        if self._empty:
            return {}
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE deployment = ?"
        args: list[Any] = [deployment]
        if ids is not None:
            wanted = list(ids)
            sql += f" AND id IN ({', '.join('?' * len(wanted))})" if wanted else " AND 0"
            args += wanted
        with self._lock:
            rows = self._db.execute(sql, args).fetchall()
        return {r[0]: instance_row(r) for r in rows}


    def write(self, deployment: str, writes: list[InstanceWrite], events: list[tuple],
              execution: int | None = None) -> None:
        """One transaction: instances' states and runtime properties, events, settled dispatches.

        ``events`` are rows as ``journal.event_row`` makes them. With ``execution``, the write
        happens only while that execution still holds the deployment's lock (else
        ``LockLostError``), checked once inside the transaction. This is the engine's hot path
        (one call per operation, carrying whatever else its journal holds): no context
        manager, and each instance's UPDATE names only the columns it changes.
        """
        db = self._db
        now = time.time()
        with self._lock:
            checkpointer = self._checkpointer
            if checkpointer is not None and checkpointer.restart_due:
                checkpointer.finish(db)
            try:
                db.execute("BEGIN IMMEDIATE")
                try:
                    fence = execution  # the first UPDATE checks the lock; the transaction keeps it
                    for w in writes:
                        if db.execute(*_instance_update(deployment, w, now, fence)).rowcount != 1:
                            raise self._lost(deployment, fence, w.instance)
                        fence = None
                    for start in range(0, len(events), _EVENTS_PER_INSERT):
                        part = events[start:start + _EVENTS_PER_INSERT] if len(events) > _EVENTS_PER_INSERT else events
                        db.execute(_insert_events(len(part)), list(chain.from_iterable(part)))
                    if any(w.forget for w in writes):  # the worker dispatches this write settles
                        db.executemany("DELETE FROM operations WHERE deployment = ? AND instance = ? AND key = ?",
                                       [(deployment, w.instance, key) for w in writes for key in w.forget])
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
                db.execute("COMMIT")
            except sqlite3.Error as exc:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise explain(self.path, exc) from exc
            if checkpointer is not None:
                checkpointer.commits += 1

    def _lost(self, deployment: str, execution: int | None, instance: str = "") -> StateError:
        """Why an instance write changed nothing: the lock is gone, or the instance is."""
        holder = self.lock(deployment)
        if execution is None or (holder is not None and holder.execution == execution):
            return StateError(f"instance '{instance}' of deployment '{deployment}' is not in the state {self.path}")
        now = f"it is now held by {holder.describe()}" if holder else "it was cleared"
        return LockLostError(f"execution {execution} no longer holds the lock on deployment '{deployment}' ({now})")

    @_translated
    def merge_runtime(self, deployment: str, instance: str, changed: Mapping[str, Any], removed: Iterable[str],
                      execution: int | None = None, token: str | None = None) -> bool:
        """Key-by-key changes of an instance's runtime properties, read and written in one
        transaction (a worker's ``ctx.instance.update()``); False when ``token`` was superseded."""
        removed = list(removed)
        with self.transaction() as db:
            if execution is not None:
                holder = self.lock(deployment)
                if holder is None or holder.execution != execution:
                    raise self._lost(deployment, execution, instance)
            if token is not None and db.execute(
                    "SELECT 1 FROM operations WHERE deployment = ? AND token = ?", (deployment, token)).fetchone() is None:
                return False
            row = db.execute("SELECT runtime FROM instances WHERE deployment = ? AND id = ?",
                             (deployment, instance)).fetchone()
            if row is None:
                raise self._lost(deployment, None, instance)
            db.execute("UPDATE instances SET runtime = ?, updated_at = ? WHERE deployment = ? AND id = ?",
                       (merged_runtime(row[0], changed, removed), time.time(), deployment, instance))
        return True

    # -- events --------------------------------------------------------------------

    @_translated
    def add_event(self, event: tuple) -> None:
        """``event`` is (ts, deployment, execution, instance, operation, plugin, type, level, message)."""
        with self._lock:
            self._db.execute(_INSERT_EVENT, event)

    @_translated
    def add_events(self, events: list[tuple], execution: int | None = None) -> None:
        """Several events at once; with ``execution``, only while it holds its deployment's lock."""
        if not events:
            return
        with self.transaction() as db:
            if execution is not None:
                deployment = events[0][1]
                holder = self.lock(deployment)
                if holder is None or holder.execution != execution:
                    raise self._lost(deployment, execution)
            db.executemany(_INSERT_EVENT, events)

    @_translated
    def events(self, deployment: str, after: int = 0, execution: int | None = None) -> list[Event]:
        if self._empty:
            return []
        sql = ("SELECT ts, deployment, execution, instance, operation, plugin, type, level, message, id "
               "FROM events WHERE deployment = ? AND id > ?")
        args: list[Any] = [deployment, after]
        if execution is not None:
            sql += " AND execution = ?"
            args.append(execution)
        with self._lock:
            return [Event(*r) for r in self._db.execute(sql + " ORDER BY id", args)]

    # -- executions and locks ------------------------------------------------------

    @_translated
    def lock(self, deployment: str) -> LockInfo | None:
        if self._empty:
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT deployment, execution, workflow, pid, host, proc_start, acquired_at, expires_at "
                "FROM locks WHERE deployment = ?", (deployment,)).fetchone()
        return LockInfo(*row) if row else None

    @_translated
    def start_execution(self, deployment: str, workflow: str, lease: float | None = None,
                        prepare: Callable[[], None] | None = None, backup: bool = True,
                        request: str | None = None) -> int:
        """Take the deployment's lock and record a new execution, in one transaction.

        A live holder's lock is refused with ``StateLockedError`` before anything is
        written. Then the backup is taken (the state as it was), ``prepare()`` runs
        (e.g. saving the deployment's new plan; if it raises, nothing is kept), and the
        execution and its lock are recorded.
        """
        lease = lease or lease_seconds()
        me = self._holder
        now = time.time()
        with self.transaction() as db:
            current = self.lock(deployment)
            if current is not None and why_free(current, me, now) is None:
                raise StateLockedError(busy_message(current, now))
            if backup and self._ids():  # a state that holds nothing has nothing to lose
                take_backup(self.path)
            if current is not None:
                self._clear_lock(current, "interrupted", now)
            if prepare is not None:
                prepare()
            cur = db.execute("INSERT INTO executions (deployment, workflow, status, pid, host, started_at, request) "
                             "VALUES (?, ?, 'started', ?, ?, ?, ?)", (deployment, workflow, me.pid, me.host, now,
                                                                      request))
            execution_id = int(cur.lastrowid or 0)
            db.execute("INSERT INTO locks (deployment, execution, pid, host, proc_start, workflow, acquired_at, "
                       "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (deployment, execution_id, me.pid, me.host, me.proc_start, workflow, now, now + lease))
        self._checkpoint_aside()
        return execution_id

    def _checkpoint_aside(self) -> None:
        """While executions run, checkpoints run in a thread of their own (``checkpointer``)."""
        with self._lock:
            self._executions += 1
            if self._checkpointer is not None or not self.writable:
                return
            if self._db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                return
            self._checkpointer = Checkpointer(self._uri)
            self._db.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_PAGES}")

    def _checkpoint_inline(self) -> None:
        """After the last execution: SQLite's own checkpoints again, and this process's last
        connection is the writer's (closing it, even at exit, checkpoints and removes the log)."""
        with self._lock:
            self._executions = max(0, self._executions - 1)
            if self._executions or self._checkpointer is None:
                return
            self._checkpointer, checkpointer = None, self._checkpointer
            checkpointer.close()
            self._db.execute("PRAGMA wal_autocheckpoint=1000")

    def _clear_lock(self, lock: LockInfo, status: str, now: float) -> None:
        self._db.execute("UPDATE executions SET status = ?, ended_at = ? WHERE id = ? AND status = 'started'",
                         (status, now, lock.execution))
        self._db.execute("DELETE FROM locks WHERE deployment = ? AND execution = ?", (lock.deployment, lock.execution))

    @_translated
    def renew_lease(self, execution: int, lease: float | None = None) -> bool:
        """Extend this execution's lease; False when the lock is no longer its own."""
        with self._lock:
            cur = self._db.execute("UPDATE locks SET expires_at = ? WHERE execution = ?",
                                   (time.time() + (lease or lease_seconds()), execution))
            return cur.rowcount == 1

    @_translated
    def unlock(self, deployment: str, force: bool = False) -> tuple[LockInfo | None, str | None]:
        """Clear a deployment's lock: ``(lock, why it was free)``; refused while its lease is live.

        ``force`` clears a live one too (its execution then stops at its next write).
        """
        now = time.time()
        with self.transaction():
            current = self.lock(deployment)
            if current is None:
                return None, None
            why = why_free(current, self._holder, now)
            if why is None and not force:
                raise StateLockedError(busy_message(current, now, unlocking=True))
            self._clear_lock(current, "interrupted", now)
        return current, why

    @_translated
    def end_execution(self, execution: int, status: str, error: str | None = None) -> None:
        try:
            with self.transaction() as db:
                db.execute("UPDATE executions SET status = ?, ended_at = ?, error = ? WHERE id = ? AND "
                           "status = 'started'", (status, time.time(), error, execution))
                db.execute("DELETE FROM locks WHERE execution = ?", (execution,))
        finally:
            self._checkpoint_inline()

    @_translated
    def last_request(self, deployment: str) -> tuple[str, str, str | None] | None:
        """The latest execution's ``(workflow, status, request)``: what a rerun may resume."""
        if self._empty:
            return None
        with self._lock:
            return self._db.execute("SELECT workflow, status, request FROM executions WHERE deployment = ? "
                                    "ORDER BY id DESC LIMIT 1", (deployment,)).fetchone()

    @_translated
    def last_execution(self, deployment: str) -> int | None:
        """The id of the deployment's latest execution: whether anything ran since it was read."""
        if self._empty:
            return None
        with self._lock:
            row = self._db.execute("SELECT max(id) FROM executions WHERE deployment = ?", (deployment,)).fetchone()
        return row[0] if row else None

    @_translated
    def executions(self, deployment: str) -> list[tuple]:
        if self._empty:
            return []
        with self._lock:
            return self._db.execute(
                "SELECT id, workflow, status, started_at, ended_at, error FROM executions "
                "WHERE deployment = ? ORDER BY id", (deployment,)).fetchall()


    # -- operations run by workers -------------------------------------------------

    @_translated
    def dispatch_operation(self, deployment: str, instance: str, key: str, token: str,
                           adopt: bool = False) -> OperationOutcome | None:
        now = time.time()
        with self.transaction() as db:
            if adopt:
                row = db.execute(_SELECT_OPERATION + " WHERE deployment = ? AND instance = ? AND key = ?",
                                 (deployment, instance, key)).fetchone()
                if row is not None:
                    found = OperationOutcome(*row)
                    if found.live_claim(now) or (found.outcome is not None and json.loads(found.outcome).get("ok")):
                        return found
            db.execute("INSERT INTO operations (deployment, instance, key, token, worker, claimed_until, outcome, "
                       "dispatched_at) VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?) ON CONFLICT (deployment, instance, key) "
                       "DO UPDATE SET token = excluded.token, worker = NULL, claimed_until = NULL, outcome = NULL, "
                       "dispatched_at = excluded.dispatched_at", (deployment, instance, key, token, now))
        return None

    @_translated
    def claim_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                        lease: float) -> bool:
        now = time.time()
        with self._lock:
            cur = self._db.execute(
                "UPDATE operations SET worker = ?, claimed_until = ? WHERE deployment = ? AND instance = ? AND "
                "key = ? AND token = ? AND outcome IS NULL AND (worker IS NULL OR worker = ? OR claimed_until < ?)",
                (worker, now + lease, deployment, instance, key, token, worker, now))
            return cur.rowcount == 1

    @_translated
    def renew_claims(self, worker: str, lease: float) -> None:
        with self._lock:
            self._db.execute("UPDATE operations SET claimed_until = ? WHERE worker = ? AND outcome IS NULL",
                             (time.time() + lease, worker))

    @_translated
    def finish_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                         outcome: str) -> bool:
        with self._lock:
            cur = self._db.execute(
                "UPDATE operations SET outcome = ?, claimed_until = NULL WHERE deployment = ? AND instance = ? AND "
                "key = ? AND token = ? AND worker = ? AND outcome IS NULL",
                (outcome, deployment, instance, key, token, worker))
            return cur.rowcount == 1

    @_translated
    def outcomes(self, deployment: str, tokens: Iterable[str]) -> dict[str, OperationOutcome]:
        wanted = list(tokens)
        if not wanted:
            return {}
        with self._lock:
            rows = self._db.execute(
                _SELECT_OPERATION + f" WHERE deployment = ? AND token IN ({', '.join('?' * len(wanted))}) "
                "AND worker IS NOT NULL", [deployment, *wanted]).fetchall()
        return {r[0]: OperationOutcome(*r) for r in rows}

    @_translated
    def forget_operation(self, deployment: str, instance: str, key: str) -> None:
        with self._lock:
            self._db.execute("DELETE FROM operations WHERE deployment = ? AND instance = ? AND key = ?",
                             (deployment, instance, key))

    @_translated
    def withdraw_operation(self, deployment: str, instance: str, key: str, token: str) -> bool:
        with self._lock:
            return self._db.execute(
                "DELETE FROM operations WHERE deployment = ? AND instance = ? AND key = ? AND token = ? AND "
                "outcome IS NULL AND (worker IS NULL OR claimed_until < ?)",
                (deployment, instance, key, token, time.time())).rowcount == 1

    # -- plans and the blueprint's files, for workers ---------------------------------

    @_translated
    def put_blob(self, deployment: str, digest: str, data: bytes) -> None:
        now = time.time()
        with self.transaction() as db:
            db.execute("INSERT INTO resources (deployment, digest, archive, created_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (deployment, digest) DO UPDATE SET created_at = excluded.created_at",
                       (deployment, digest, data, now))
            db.execute("DELETE FROM resources WHERE deployment = ? AND created_at < ?", (deployment, now - BLOB_DAYS))

    @_translated
    def blob(self, deployment: str, digest: str) -> bytes | None:
        with self._lock:
            row = self._db.execute("SELECT archive FROM resources WHERE deployment = ? AND digest = ?",
                                   (deployment, digest)).fetchone()
        return bytes(row[0]) if row else None


class _OpenFiles:
    """The state files this process has SQLite connections on (by device and inode).

    Closing *any* descriptor of a file drops every POSIX lock this process holds on it,
    SQLite's included (https://sqlite.org/howtocorrupt.html, 2.2). A WAL connection holds a
    shared lock on the database file for as long as it is open: it is how a process that
    closes its last connection knows whether it is the last user, and may checkpoint and
    delete the -wal and -shm files. Drop that lock with a stray ``open()``/``close()`` and
    another process deletes them from under us: our later commits go to a deleted file and
    are lost (an execution left "started", deployments the lineage remembers but the state
    lost, "disk I/O error"). So the state file is opened outside SQLite only while this
    process has no connection on it, under this registry's lock.
    """

    def __init__(self) -> None:
        self._mutex = threading.RLock()
        self._count: collections.Counter[tuple[int, int]] = collections.Counter()

    def __enter__(self) -> _OpenFiles:
        self._mutex.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mutex.release()

    @staticmethod
    def _key(path: Path) -> tuple[int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def has(self, path: Path) -> bool:
        """Whether this process has a connection on ``path`` (then no raw read is safe)."""
        key = self._key(path)
        return key is not None and self._count[key] > 0

    def opened(self, path: Path) -> tuple[int, int] | None:
        key = self._key(path)
        if key is not None:
            self._count[key] += 1
        return key

    def closed(self, key: tuple[int, int] | None) -> None:
        if key is not None:
            self._count[key] -= 1
            if self._count[key] <= 0:
                del self._count[key]


_OPEN_FILES = _OpenFiles()


def _check_size(path: Path) -> None:
    """A file shorter than its header says was truncated: refuse it before reading garbage.

    Only without a WAL: pages of an unfinished checkpoint (e.g. a full disk) live there.
    It reads the file outside SQLite: call it only while this process has no connection on it
    (``_OpenFiles``).
    """
    wal = path.with_name(path.name + "-wal")
    if wal.exists() and wal.stat().st_size:
        return
    with open(path, "rb") as f:
        header = f.read(100)
    if not header.startswith(b"SQLite format 3\0"):
        return  # empty (a new state), or not a database at all: SQLite says which
    if len(header) < 100:
        raise sqlite3.DatabaseError("file is not a database (shorter than its header)")
    page_size = int.from_bytes(header[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(header[28:32], "big")
    if pages and header[24:28] == header[92:96] and os.path.getsize(path) < pages * page_size:
        raise sqlite3.DatabaseError(f"database disk image is malformed (truncated: {os.path.getsize(path)} "
                                    f"bytes of {pages * page_size})")


def take_backup_as(state: Path, target: Path) -> None:
    """A copy of the state under another name (before a migration)."""
    take_backup(state)
    os.replace(backup_path(state), target)


_JSON_COLUMNS = {"deployments": ("inputs", "plan", "leftovers"), "plans": ("plan",),
                 "instances": ("ops", "runtime", "secret_keys")}


def _recovery_advice(path: Path) -> str:
    backup = backup_path(path)
    if backup.is_file():
        return (f"The state as it was when the last execution started is in {backup}: rerun with "
                f"--state-recover to put it back (the current file is kept aside). If you replaced or "
                f"emptied the state on purpose, delete {path.name}.lineage")
    return (f"There is no backup ({backup}). If you replaced or emptied the state on purpose, delete "
            f"{path.name}.lineage")


_INSERT_EVENT = ("INSERT INTO events (ts, deployment, execution, instance, operation, plugin, type, level, message) "
                 "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)")
_SELECT_OPERATION = "SELECT token, instance, key, worker, claimed_until, outcome FROM operations"

_FENCED_BY = " AND EXISTS (SELECT 1 FROM locks WHERE deployment = ? AND execution = ?)"
_EVENTS_PER_INSERT = 64  # rows per INSERT statement (9 values each, well under SQLite's limit)


@functools.cache
def _insert_events(rows: int) -> str:
    """One INSERT of ``rows`` events: a statement costs far more than a row."""
    return _INSERT_EVENT.replace("VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                 "VALUES " + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?, ?)"] * rows))


_UPDATE_STATE = "UPDATE instances SET state = ?, ops = ?, updated_at = ?, error = ? WHERE deployment = ? AND id = ?"
_UPDATE_ALL = ("UPDATE instances SET state = ?, ops = ?, runtime = coalesce(?, runtime), updated_at = ?, error = ?, "
               "secret_keys = coalesce(?, secret_keys), plan_version = coalesce(?, plan_version) "
               "WHERE deployment = ? AND id = ?")
_UPDATE_RUNTIME = ("UPDATE instances SET runtime = ?, updated_at = ?, secret_keys = coalesce(?, secret_keys) "
                   "WHERE deployment = ? AND id = ?")
# each also as the first UPDATE of a write that an execution's lock fences
_FENCED = {sql: sql + _FENCED_BY for sql in (_UPDATE_STATE, _UPDATE_ALL, _UPDATE_RUNTIME)}


def _instance_update(deployment: str, w: InstanceWrite, now: float, fence: int | None) -> tuple[str, tuple]:
    """The narrowest UPDATE for ``w`` (most engine writes change the state and operations only),
    checking that execution ``fence`` holds the lock unless it is None."""
    keys = None if w.secret_keys is None else json.dumps(w.secret_keys)
    if w.state is None:
        sql, args = _UPDATE_RUNTIME, (w.runtime_json, now, keys, deployment, w.instance)
    elif w.runtime_json is None and keys is None and w.version is None:
        sql, args = _UPDATE_STATE, (w.state, w.ops_json, now, w.error, deployment, w.instance)
    else:
        sql, args = _UPDATE_ALL, (w.state, w.ops_json, w.runtime_json, now, w.error, keys, w.version, deployment,
                                  w.instance)
    return (sql, args) if fence is None else (_FENCED[sql], (*args, deployment, fence))
