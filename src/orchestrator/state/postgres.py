"""PostgreSQL state: the same tables and guarantees as the SQLite store, for several hosts.

A team, CLIs on several machines and workers share one database (``--state
postgresql://USER@HOST/DB``; the password from ``~/.pgpass`` or ``PGPASSWORD``, never on a
command line). What SQLite gets from one writer at a time, this store gets from row locks
and advisory locks, each held only for the length of one transaction:

- a deployment's lock is a row with an expiry (a lease), as in SQLite, not a session
  advisory lock: it must outlive a dropped connection (the holder reconnects and goes
  on), be visible to ``status`` and ``unlock`` from any host, and name its holder. Taking
  it over is serialised per deployment by a transaction-scoped advisory lock;
- a write fenced by an execution reads that lock row ``FOR KEY SHARE``: a take-over (which
  deletes the row) waits for writes in flight and every later write of the old holder
  finds the row gone (``LockLostError``);
- leases and worker claims are timed by the database's clock, so hosts whose clocks
  disagree still agree on when a lease expired;
- a deployment's events are inserted under a per-deployment advisory lock, so their ids
  commit in order and a reader paging with ``events(after=ID)`` never skips one;
- the hot writes (``record``, ``add_events``) are one statement each (``postgres_writes``):
  one round trip instead of one per statement.

The engine calls a store from several threads: like ``SqliteStore``, this one serialises
them on one connection (autocommit, explicit transactions) behind a re-entrant lock.
A broken connection is replaced at the next call outside a transaction.
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

from orchestrator.errors import LockLostError, StateError, StateLockedError, StatePathError
from orchestrator.state import postgres_schema as schema
from orchestrator.state import postgres_writes as statements
from orchestrator.state.leases import Holder, busy_message, lease_seconds, why_free
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

try:
    import psycopg
except ImportError:  # an optional extra: the error says how to install it
    psycopg = None  # type: ignore[assignment]

SCHEMA_VERSION = schema.SCHEMA_VERSION
CONNECT_TIMEOUT = 10  # seconds, unless the URL or PGCONNECT_TIMEOUT says otherwise

F = TypeVar("F", bound=Callable[..., Any])


def one_line(exc: BaseException) -> str:
    """A driver's message (often several lines with tabs) as one line."""
    return " ".join(str(exc).split()) or type(exc).__name__


def libpq_url(url: str) -> str:
    """libpq reads ``postgresql://`` and ``postgres://``; drop a SQLAlchemy-style ``+driver``."""
    scheme, sep, rest = url.partition("://")
    return scheme.split("+", 1)[0].lower() + sep + rest


def _translated(method: F) -> F:
    """Let no driver error out of a store method: each becomes a ``StateError``."""

    @functools.wraps(method)
    def wrapper(self: PostgresStore, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            raise self._explain(exc) from exc

    return wrapper  # type: ignore[return-value]


class PostgresStore(WritesOne):
    """All reads and writes of one PostgreSQL state; safe to share between threads.

    ``create=False`` opens it for reading only: an empty database reads as a state with no
    deployments and nothing is created. An older schema is migrated on open (its tables
    are only added to); a newer one is refused.
    """

    def __init__(self, url: str, *, create: bool = True) -> None:
        from orchestrator.state import display

        self.url = url
        self.location = display(url)
        self.writable = create
        self.recovered: str | None = None
        self._lock = threading.RLock()
        self._depth = 0  # > 0 inside a transaction (nested ones join it)
        self._empty = False
        self._holder = Holder.current()
        if psycopg is None:
            raise StatePathError(f"--state {self.location} is a PostgreSQL database, but psycopg is not installed: "
                                 f"pip install 'orchestrator-engine[postgres]'")
        self._db = self._connect()
        try:
            self._open()
        except psycopg.Error as exc:
            self._db.close()
            raise self._explain(exc) from exc
        except BaseException:
            self._db.close()
            raise

    # -- opening ---------------------------------------------------------------------

    def _connect(self) -> Any:
        options: dict[str, Any] = {"autocommit": True, "application_name": "orchestrator"}
        if "connect_timeout" not in self.url and "PGCONNECT_TIMEOUT" not in os.environ:
            options["connect_timeout"] = CONNECT_TIMEOUT
        try:
            return psycopg.connect(libpq_url(self.url), **options)
        except psycopg.Error as exc:
            raise StatePathError(f"cannot use the PostgreSQL state {self.location}: {one_line(exc)}") from exc

    def _open(self) -> None:
        version = schema.stored_version(self._db)
        if version == SCHEMA_VERSION:
            return
        self._refuse(version)
        if version is None and not self.writable:
            self._empty = True  # a query on an empty database: nothing in it, nothing written
            return
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(%s, %s)", (schema.NAMESPACE, schema.SCHEMA_KEY))
            current = schema.stored_version(db)  # another process may have done it meanwhile
            self._refuse(current)
            if current is None:
                schema.create(db)
            elif current < SCHEMA_VERSION:
                schema.migrate(db, current)

    def _refuse(self, version: int | None) -> None:
        if version is not None and version > SCHEMA_VERSION:
            raise StateError(f"the state {self.location} was written by a newer orchestrator (schema {version}; "
                             f"this one reads up to {SCHEMA_VERSION}): upgrade orchestrator-engine to use it")
        if version is not None and version < schema.OLDEST:
            raise StateError(f"the state {self.location} has schema {version}, older than any PostgreSQL state "
                             f"this orchestrator can migrate (from {schema.OLDEST})")

    def _explain(self, exc: BaseException) -> StateError:
        """A driver error as one sentence a user can act on."""
        if isinstance(exc, psycopg.OperationalError) and (self._db.closed or self._db.broken):
            return StateError(f"lost the connection to the PostgreSQL state {self.location} ({one_line(exc)}); "
                              f"run the command again: nothing recorded before this point is lost")
        return StateError(f"the PostgreSQL state {self.location} cannot be used: {one_line(exc)}")

    def _conn(self) -> Any:
        """The connection; a broken one is replaced (only between transactions)."""
        if self._depth == 0 and (self._db.closed or self._db.broken):
            if not self._db.closed:
                self._db.close()
            self._db = self._connect()
        return self._db

    @_translated
    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[Any]:
        """One transaction; nested use joins the outer one (all or nothing)."""
        with self._lock:
            if self._depth:
                yield self._db
                return
            db = self._conn()
            self._depth += 1
            try:
                with db.transaction():
                    yield db
            finally:
                self._depth -= 1

    def _one(self, sql: str, args: Any = ()) -> Any:
        with self._lock:
            return self._conn().execute(sql, args).fetchone()

    def _all(self, sql: str, args: Any = ()) -> list[Any]:
        with self._lock:
            return self._conn().execute(sql, args).fetchall()

    def _run(self, sql: str, args: Any = ()) -> int:
        """A single write statement; the number of rows it changed."""
        with self._lock:
            return self._conn().execute(sql, args).rowcount

    # -- deployments ---------------------------------------------------------------

    @_translated
    def get_deployment(self, deployment: str) -> DeploymentRow | None:
        if self._empty:
            return None
        row = self._one("SELECT id, blueprint, inputs, plan, structure, created_at, updated_at, leftovers, "
                        "plan_version FROM deployments WHERE id = %s", (deployment,))
        if row is None:
            return None
        return DeploymentRow(row[0], row[1], json.loads(row[2]), row[3], row[4], row[5], row[6],
                             json.loads(row[7]) if row[7] else [], row[8])

    @_translated
    def plan_version(self, deployment: str, version: int) -> str | None:
        if self._empty:
            return None
        row = self._one("SELECT plan FROM plans WHERE deployment = %s AND version = %s", (deployment, version))
        return row[0] if row else None

    @_translated
    def deployment_ids(self) -> list[str]:
        if self._empty:
            return []
        return [r[0] for r in self._all("SELECT id FROM deployments ORDER BY created_at, id")]

    @_translated
    def save_deployment(self, deployment: str, blueprint: str, inputs: dict[str, Any], plan: str,
                        structure: str, instances: Iterable[tuple[str, str]]) -> int:
        """Create or update a deployment; returns its plan's version (a new one if the plan changed)."""
        now = time.time()
        with self.transaction() as db:
            current = db.execute("SELECT plan, plan_version FROM deployments WHERE id = %s FOR UPDATE",
                                 (deployment,)).fetchone()
            version = 1 if current is None else current[1] if current[0] == plan else current[1] + 1
            db.execute(
                "INSERT INTO deployments (id, blueprint, inputs, plan, structure, created_at, updated_at, "
                "plan_version) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO UPDATE SET "
                "blueprint = excluded.blueprint, inputs = excluded.inputs, plan = excluded.plan, "
                "structure = excluded.structure, updated_at = excluded.updated_at, "
                "plan_version = excluded.plan_version",
                (deployment, blueprint, json.dumps(inputs), plan, structure, now, now, version))
            db.execute("INSERT INTO plans (deployment, version, plan, created_at) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT (deployment, version) DO UPDATE SET plan = excluded.plan, "
                       "created_at = excluded.created_at", (deployment, version, plan, now))
            wanted = dict(instances)
            existing = dict(db.execute("SELECT id, state FROM instances WHERE deployment = %s",
                                       (deployment,)).fetchall())
            gone = [i for i, state in existing.items() if i not in wanted and state in ("uninitialized", "deleted")]
            if gone:
                db.execute("DELETE FROM instances WHERE deployment = %s AND id = ANY(%s)", (deployment, gone))
            new = [(deployment, i, node, now) for i, node in wanted.items() if i not in existing]
            if new:
                with db.cursor() as cur:
                    cur.executemany("INSERT INTO instances (deployment, id, node, state, ops, runtime, updated_at) "
                                    "VALUES (%s, %s, %s, 'uninitialized', '{}', '{}', %s)", new)
        return version

    @_translated
    def settle_plan(self, deployment: str, version: int, unchanged: Iterable[str], wanted: set[str]) -> None:
        """After an update: instances it found unchanged are of the new version too; instances
        gone from the plan are forgotten; plan versions no instance needs are dropped."""
        with self.transaction() as db:
            db.execute("UPDATE instances SET plan_version = %s WHERE deployment = %s AND id = ANY(%s) AND "
                       "plan_version IS NOT NULL", (version, deployment, list(unchanged)))
            rows = db.execute("SELECT id, state FROM instances WHERE deployment = %s", (deployment,)).fetchall()
            gone = [i for i, state in rows if i not in wanted and state in ("uninitialized", "deleted")]
            if gone:
                db.execute("DELETE FROM instances WHERE deployment = %s AND id = ANY(%s)", (deployment, gone))
            db.execute("DELETE FROM plans WHERE deployment = %s AND version != %s AND version NOT IN "
                       "(SELECT plan_version FROM instances WHERE deployment = %s AND plan_version IS NOT NULL)",
                       (deployment, version, deployment))

    @_translated
    def instance_versions(self, deployment: str) -> dict[str, int | None]:
        if self._empty:
            return {}
        return dict(self._all("SELECT id, plan_version FROM instances WHERE deployment = %s", (deployment,)))

    @_translated
    def set_leftovers(self, deployment: str, leftovers: list[dict[str, Any]]) -> None:
        self._run("UPDATE deployments SET leftovers = %s WHERE id = %s",
                  (json.dumps(leftovers) if leftovers else None, deployment))

    @_translated
    def delete_deployment(self, deployment: str) -> None:
        with self.transaction() as db:
            for table in ("instances", "events", "executions", "locks", "plans", "operations", "resources"):
                db.execute(f"DELETE FROM {table} WHERE deployment = %s", (deployment,))
            db.execute("DELETE FROM deployments WHERE id = %s", (deployment,))

    # -- instances -----------------------------------------------------------------

    @_translated
    def instances(self, deployment: str, ids: Iterable[str] | None = None) -> dict[str, InstanceRow]:
        if self._empty:
            return {}
        sql = f"SELECT {INSTANCE_COLUMNS} FROM instances WHERE deployment = %s"
        args: list[Any] = [deployment]
        if ids is not None:
            sql += " AND id = ANY(%s)"
            args.append(list(ids))
        return {r[0]: instance_row(r) for r in self._all(sql, args)}

    @_translated
    def write(self, deployment: str, writes: list[InstanceWrite], events: list[tuple],
              execution: int | None = None) -> None:
        """One atomic write of instances (states, runtime properties), events and settled
        dispatches; with ``execution``, only while it holds the deployment's lock (else
        ``LockLostError``). The engine's hot path (about one call per operation): one statement
        (``postgres_writes``)."""
        if not writes:
            self.add_events(events, execution)
            return
        args = {"now": time.time(), "deployment": deployment, "execution": execution,
                **statements.write_args(writes), **statements.event_args(events)}
        sql = statements.write_sql(execution is not None, bool(events), bool(args["fi"]))
        if self._one(sql, args)[0] != len(writes):
            updated = self.instances(deployment, [w.instance for w in writes])
            missing = next((w.instance for w in writes if w.instance not in updated), "")
            raise self._lost(deployment, execution if not missing else None, missing)

    def _lost(self, deployment: str, execution: int | None, instance: str = "") -> StateError:
        """Why a write changed nothing: the lock is gone, or the instance is."""
        holder = self.lock(deployment)
        if execution is None or (holder is not None and holder.execution == execution):
            return StateError(f"instance '{instance}' of deployment '{deployment}' is not in the state "
                              f"{self.location}")
        now = f"it is now held by {holder.describe()}" if holder else "it was cleared"
        return LockLostError(f"execution {execution} no longer holds the lock on deployment '{deployment}' ({now})")

    def _fence(self, db: Any, deployment: str, execution: int | None, instance: str = "") -> None:
        """Inside a transaction: hold on to ``execution``'s lock until commit, or fail if it has none."""
        if execution is not None and db.execute(
                "SELECT 1 FROM locks WHERE deployment = %s AND execution = %s FOR KEY SHARE",
                (deployment, execution)).fetchone() is None:
            raise self._lost(deployment, execution, instance)

    @_translated
    def merge_runtime(self, deployment: str, instance: str, changed: Mapping[str, Any], removed: Iterable[str],
                      execution: int | None = None, token: str | None = None) -> bool:
        """Key-by-key changes of an instance's runtime properties, read (``FOR UPDATE``) and written
        in one transaction; False when ``token`` was superseded."""
        removed = list(removed)
        with self.transaction() as db:
            self._fence(db, deployment, execution, instance)
            if token is not None and db.execute("SELECT 1 FROM operations WHERE deployment = %s AND token = %s",
                                                (deployment, token)).fetchone() is None:
                return False
            row = db.execute("SELECT runtime FROM instances WHERE deployment = %s AND id = %s FOR UPDATE",
                             (deployment, instance)).fetchone()
            if row is None:
                raise self._lost(deployment, None, instance)
            db.execute("UPDATE instances SET runtime = %s, updated_at = %s WHERE deployment = %s AND id = %s",
                       (merged_runtime(row[0], changed, removed), time.time(), deployment, instance))
        return True

    # -- events --------------------------------------------------------------------

    @_translated
    def add_event(self, event: tuple) -> None:
        """``event`` is (ts, deployment, execution, instance, operation, plugin, type, level, message)."""
        self.add_events([event])

    @_translated
    def add_events(self, events: list[tuple], execution: int | None = None) -> None:
        """Several events at once, in one statement; with ``execution``, only while it holds its
        deployment's lock."""
        if not events:
            return
        deployment = events[0][1]
        args = {"deployment": deployment, "execution": execution, **statements.event_args(events)}
        if self._one(statements.events_sql(execution is not None), args)[0] != 1:
            raise self._lost(deployment, execution)

    @_translated
    def events(self, deployment: str, after: int = 0, execution: int | None = None) -> list[Event]:
        if self._empty:
            return []
        sql = ("SELECT ts, deployment, execution, instance, operation, plugin, type, level, message, id "
               "FROM events WHERE deployment = %s AND id > %s")
        args: list[Any] = [deployment, after]
        if execution is not None:
            sql += " AND execution = %s"
            args.append(execution)
        return [Event(*r) for r in self._all(sql + " ORDER BY id", args)]

    # -- executions and locks ------------------------------------------------------

    @_translated
    def lock(self, deployment: str) -> LockInfo | None:
        if self._empty:
            return None
        row = self._one("SELECT deployment, execution, workflow, pid, host, proc_start, acquired_at, expires_at "
                        "FROM locks WHERE deployment = %s", (deployment,))
        return LockInfo(*row) if row else None

    def _lock_for_change(self, db: Any, deployment: str) -> tuple[LockInfo | None, float]:
        """Inside a transaction: the deployment's lock, with take-overs serialised, and the database's time."""
        db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (schema.LOCK_NAMESPACE, deployment))
        row = db.execute("SELECT deployment, execution, workflow, pid, host, proc_start, acquired_at, expires_at "
                         "FROM locks WHERE deployment = %s FOR UPDATE", (deployment,)).fetchone()
        return (LockInfo(*row) if row else None), _db_now(db)

    @_translated
    def start_execution(self, deployment: str, workflow: str, lease: float | None = None,
                        prepare: Callable[[], None] | None = None, backup: bool = True,
                        request: str | None = None) -> int:
        """Take the deployment's lock and record a new execution, in one transaction.

        A live holder's lock is refused with ``StateLockedError`` before anything is written;
        an expired one (or one of a dead process on this host) is taken over and its
        execution marked interrupted. Then ``prepare()`` runs (if it raises, nothing is kept).
        ``backup`` is for SQLite files: a database is backed up by PostgreSQL's own tools.
        """
        lease = lease or lease_seconds()
        me = self._holder
        with self.transaction() as db:
            current, now = self._lock_for_change(db, deployment)
            if current is not None and why_free(current, me, now) is None:
                raise StateLockedError(busy_message(current, now))
            if current is not None:
                _clear_lock(db, current, "interrupted", time.time())
            if prepare is not None:
                prepare()
            execution = int(db.execute(
                "INSERT INTO executions (deployment, workflow, status, pid, host, started_at, request) "
                "VALUES (%s, %s, 'started', %s, %s, %s, %s) RETURNING id",
                (deployment, workflow, me.pid, me.host, time.time(), request)).fetchone()[0])
            db.execute("INSERT INTO locks (deployment, execution, pid, host, proc_start, workflow, acquired_at, "
                       "expires_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                       (deployment, execution, me.pid, me.host, me.proc_start, workflow, now, now + lease))
        return execution

    @_translated
    def renew_lease(self, execution: int, lease: float | None = None) -> bool:
        """Extend this execution's lease (by the database's clock); False when the lock is no longer its own."""
        return self._run("UPDATE locks SET expires_at = extract(epoch FROM clock_timestamp()) + %s "
                         "WHERE execution = %s", (float(lease or lease_seconds()), execution)) == 1

    @_translated
    def unlock(self, deployment: str, force: bool = False) -> tuple[LockInfo | None, str | None]:
        """Clear a deployment's lock: ``(lock, why it was free)``; refused while its lease is live
        unless ``force`` (its execution then stops at its next write)."""
        with self.transaction() as db:
            current, now = self._lock_for_change(db, deployment)
            if current is None:
                return None, None
            why = why_free(current, self._holder, now)
            if why is None and not force:
                raise StateLockedError(busy_message(current, now, unlocking=True))
            _clear_lock(db, current, "interrupted", time.time())
        return current, why

    @_translated
    def end_execution(self, execution: int, status: str, error: str | None = None) -> None:
        with self.transaction() as db:
            db.execute("UPDATE executions SET status = %s, ended_at = %s, error = %s WHERE id = %s AND "
                       "status = 'started'", (status, time.time(), error, execution))
            db.execute("DELETE FROM locks WHERE execution = %s", (execution,))

    @_translated
    def last_request(self, deployment: str) -> tuple[str, str, str | None] | None:
        """The latest execution's ``(workflow, status, request)``: what a rerun may resume."""
        if self._empty:
            return None
        row = self._one("SELECT workflow, status, request FROM executions WHERE deployment = %s "
                        "ORDER BY id DESC LIMIT 1", (deployment,))
        return tuple(row) if row else None  # type: ignore[return-value]

    @_translated
    def last_execution(self, deployment: str) -> int | None:
        if self._empty:
            return None
        row = self._one("SELECT max(id) FROM executions WHERE deployment = %s", (deployment,))
        return row[0] if row else None

    @_translated
    def executions(self, deployment: str) -> list[tuple]:
        if self._empty:
            return []
        return [tuple(r) for r in self._all("SELECT id, workflow, status, started_at, ended_at, error "
                                            "FROM executions WHERE deployment = %s ORDER BY id", (deployment,))]

    # -- operations run by workers -------------------------------------------------

    @_translated
    def dispatch_operation(self, deployment: str, instance: str, key: str, token: str,
                           adopt: bool = False) -> OperationOutcome | None:
        with self.transaction() as db:
            if adopt:
                row = db.execute(_SELECT_OPERATION + " WHERE deployment = %s AND instance = %s AND key = %s "
                                 "FOR UPDATE", (deployment, instance, key)).fetchone()
                if row is not None:
                    found = OperationOutcome(*row)
                    if found.live_claim(_db_now(db)) or (found.outcome is not None
                                                         and json.loads(found.outcome).get("ok")):
                        return found
            db.execute("INSERT INTO operations (deployment, instance, key, token, worker, claimed_until, outcome, "
                       "dispatched_at) VALUES (%s, %s, %s, %s, NULL, NULL, NULL, %s) ON CONFLICT (deployment, "
                       "instance, key) DO UPDATE SET token = excluded.token, worker = NULL, claimed_until = NULL, "
                       "outcome = NULL, dispatched_at = excluded.dispatched_at",
                       (deployment, instance, key, token, time.time()))
        return None

    @_translated
    def claim_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                        lease: float) -> bool:
        """One claim wins: a concurrent claim re-reads the row once the first commits."""
        return self._run(
            "UPDATE operations SET worker = %s, claimed_until = extract(epoch FROM clock_timestamp()) + %s "
            "WHERE deployment = %s AND instance = %s AND key = %s AND token = %s AND outcome IS NULL AND "
            "(worker IS NULL OR worker = %s OR claimed_until < extract(epoch FROM clock_timestamp()))",
            (worker, float(lease), deployment, instance, key, token, worker)) == 1

    @_translated
    def renew_claims(self, worker: str, lease: float) -> None:
        self._run("UPDATE operations SET claimed_until = extract(epoch FROM clock_timestamp()) + %s "
                  "WHERE worker = %s AND outcome IS NULL", (float(lease), worker))

    @_translated
    def finish_operation(self, deployment: str, instance: str, key: str, token: str, worker: str,
                         outcome: str) -> bool:
        return self._run(
            "UPDATE operations SET outcome = %s, claimed_until = NULL WHERE deployment = %s AND instance = %s AND "
            "key = %s AND token = %s AND worker = %s AND outcome IS NULL",
            (outcome, deployment, instance, key, token, worker)) == 1

    @_translated
    def outcomes(self, deployment: str, tokens: Iterable[str]) -> dict[str, OperationOutcome]:
        wanted = list(tokens)
        if not wanted or self._empty:
            return {}
        rows = self._all(_SELECT_OPERATION + " WHERE deployment = %s AND token = ANY(%s) AND worker IS NOT NULL",
                         (deployment, wanted))
        return {r[0]: OperationOutcome(*r) for r in rows}

    @_translated
    def forget_operation(self, deployment: str, instance: str, key: str) -> None:
        self._run("DELETE FROM operations WHERE deployment = %s AND instance = %s AND key = %s",
                  (deployment, instance, key))

    @_translated
    def withdraw_operation(self, deployment: str, instance: str, key: str, token: str) -> bool:
        return self._run("DELETE FROM operations WHERE deployment = %s AND instance = %s AND key = %s AND "
                         "token = %s AND outcome IS NULL AND (worker IS NULL OR "
                         "claimed_until < extract(epoch FROM clock_timestamp()))", (deployment, instance, key, token)) == 1

    # -- the blueprint's files -----------------------------------------------------

    @_translated
    def put_blob(self, deployment: str, digest: str, data: bytes) -> None:
        with self.transaction() as db:
            now = time.time()
            db.execute("INSERT INTO resources (deployment, digest, archive, created_at) VALUES (%s, %s, %s, %s) "
                       "ON CONFLICT (deployment, digest) DO UPDATE SET created_at = excluded.created_at",
                       (deployment, digest, data, now))
            db.execute("DELETE FROM resources WHERE deployment = %s AND created_at < %s",
                       (deployment, now - BLOB_DAYS))

    @_translated
    def blob(self, deployment: str, digest: str) -> bytes | None:
        if self._empty:
            return None
        row = self._one("SELECT archive FROM resources WHERE deployment = %s AND digest = %s", (deployment, digest))
        return bytes(row[0]) if row else None


def _db_now(db: Any) -> float:
    """The database's clock: the one every host's leases are measured by."""
    return float(db.execute("SELECT extract(epoch FROM clock_timestamp())").fetchone()[0])


def _clear_lock(db: Any, lock: LockInfo, status: str, now: float) -> None:
    db.execute("UPDATE executions SET status = %s, ended_at = %s WHERE id = %s AND status = 'started'",
               (status, now, lock.execution))
    db.execute("DELETE FROM locks WHERE deployment = %s AND execution = %s", (lock.deployment, lock.execution))


_SELECT_OPERATION = "SELECT token, instance, key, worker, claimed_until, outcome FROM operations"
