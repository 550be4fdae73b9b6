"""The worker side: run one operation request with the installed plugins, record its outcome.

Exactly once, whatever the broker does: before running, the worker *claims* the
dispatch in the state store (a lease it renews while it runs); a message delivered
again (a killed worker's, or after Redis's visibility timeout) finds the operation
finished, claimed by a live worker, or superseded by a newer dispatch, and is dropped.
The outcome is recorded once, only by the claim's holder, only while the dispatch is
current. ``ctx.instance.update()`` merges key by key into the stored instance (fenced
by the same dispatch), logs become events within ``LogLines.DELAY`` (and before the
outcome), and the CLI merges what the hook
changed when the outcome comes back: a worker's ``ctx`` behaves like a local one.
"""

from __future__ import annotations

import collections
import os
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from orchestrator.engine import hook_output
from orchestrator.engine.context import BlueprintContext, InstanceRecord, OperationContext
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import Masker
from orchestrator.engine.executor import run_hook
from orchestrator.engine.factory import ContextFactory
from orchestrator.errors import NonRecoverableError, PluginError, StateError
from orchestrator.plan import Plan
from orchestrator.plugins import PluginManager
from orchestrator.remote import files
from orchestrator.remote.messages import failure, runtime_diff, success
from orchestrator.settings import positive_seconds
from orchestrator.state import StateStore, is_url, open_store

DEFAULT_CLAIM_LEASE = 30.0  # seconds a claim lasts without renewal; renewed every third of it


def claim_lease() -> float:
    return positive_seconds("ORCHESTRATOR_CLAIM_LEASE", DEFAULT_CLAIM_LEASE)


def worker_name() -> str:
    host = os.environ.get("ORCHESTRATOR_HOST_ID") or socket.gethostname()
    return f"{host}:{os.getpid()}"


class Worker:
    """One worker process: its plugins, the stores it opened, cached plans, and a heartbeat."""

    def __init__(self, pm: PluginManager, *, state: str | None = None, name: str | None = None,
                 lease: float | None = None) -> None:
        self.pm = pm
        self.dispatcher = Dispatcher(pm)
        self.state = state  # a fixed state location; else the one each request names
        self.name = name or worker_name()
        self.lease = lease or claim_lease()
        self._stores: dict[str, tuple[StateStore, tuple[int, int] | None]] = {}  # location -> (store, file id)
        self._plans: collections.OrderedDict[tuple[str, str, str], Plan] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._heartbeat: threading.Thread | None = None
        self.ran = 0  # operations run (claimed), for tests and the worker's report

    # -- one request ----------------------------------------------------------------

    def run(self, request: Mapping[str, Any]) -> None:
        location = self.state or request["state"]
        store = self.store(location)
        deployment, instance, key, token = (request["deployment"], request["instance"], request["key"],
                                            request["token"])
        if not store.claim_operation(deployment, instance, key, token, self.name, self.lease):
            return  # finished, running on a live worker, or superseded: a duplicate delivery
        self._start_heartbeat()
        self.ran += 1
        try:
            outcome = self._run(store, request)
        except Exception as exc:  # the request itself could not be served (plan missing, state error)
            outcome = failure(NonRecoverableError(f"worker {self.name}: {type(exc).__name__}: {exc}"), {},
                              self.name)
        store.finish_operation(deployment, instance, key, token, self.name, outcome)

    def _run(self, store: StateStore, request: Mapping[str, Any]) -> str:
        deployment, token = request["deployment"], request["token"]
        plan = self.plan(store, deployment, request["plan"])
        given: dict[str, dict[str, Any]] = request.get("runtime") or {}
        records = WorkerRecords(store, deployment, plan, given)
        masker = Masker(request.get("masks") or ())
        superseded = threading.Event()
        persisted = {iid: dict(runtime) for iid, runtime in given.items()}

        def persist(rec: InstanceRecord) -> None:  # ctx.instance.update(): key by key, fenced by the dispatch
            with rec.lock:
                now = dict(rec.runtime)
            diff = runtime_diff(persisted.get(rec.id, {}), now)
            if diff is None:
                return
            if not store.merge_runtime(deployment, rec.id, diff["set"], diff["unset"], token=token):
                superseded.set()
                raise NonRecoverableError(f"the operation on {rec.id} was dispatched again meanwhile (it timed "
                                          f"out or its worker was presumed dead); this run's changes are discarded")
            persisted[rec.id] = now

        execution = request.get("execution")
        lines = LogLines(store)

        def emit(level: str, text: str, instance: str, op: str, owner: str | None) -> None:
            lines.add((time.time(), deployment, execution, instance, op, owner, "log", level, masker(text)))

        factory = ContextFactory(plan, records, request.get("secrets") or {}, deployment, persist, emit,
                                 int(request.get("max_retries", 0)))
        blueprint = self._blueprint(store, deployment, request.get("files"), plan)
        if blueprint is not None:
            factory.blueprint = blueprint
        inst = plan.instances[request["instance"]]
        changes = {path: tuple(pair) for path, pair in request["changes"].items()} if request.get("changes") else None
        custom = (request["custom"][0], request["custom"][1]) if request.get("custom") else None
        owner, op = request.get("owner"), request["op"]
        ctx = factory.operation(inst, op, int(request.get("attempt", 0)), request.get("relationship"), owner,
                                lambda: not superseded.is_set(), changes, custom)
        try:
            with hook_output.captured():  # what the hook prints becomes its log lines, as in the CLI
                return self._call(ctx, owner, op, records, given, masker)
        finally:
            lines.close()

    def _call(self, ctx: OperationContext, owner: str | None, op: str, records: WorkerRecords,
              given: Mapping[str, dict[str, Any]], masker: Masker) -> str:
        try:
            try:
                caller = self.dispatcher.caller(owner, op)
            except PluginError as exc:
                raise NonRecoverableError(f"on worker {self.name}: {exc}; install it on every worker") from None
            if caller is None:
                raise NonRecoverableError(f"plugin '{owner}' on worker {self.name} does not implement {op} (the "
                                          f"CLI's copy does): install the same plugin version on every worker")
            result = run_hook(caller, ctx)
            _merge(ctx)
        except BaseException as exc:  # what the hook raised goes back to the CLI, which decides
            try:
                _merge(ctx)
            except NonRecoverableError:
                pass
            return failure(exc, _diffs(records, given), self.name, masker)
        return success(result, _diffs(records, given), self.name)

    # -- what requests share ----------------------------------------------------------

    def store(self, location: str) -> StateStore:
        """The store at ``location``, opened once; a SQLite file replaced since (deleted and made
        again) is opened anew, or claims would go to the old file and every operation be dropped."""
        identity = None if is_url(location) else _file_identity(location)
        with self._lock:
            found = self._stores.get(location)
            if found is not None and found[1] == identity:
                return found[0]
            store = open_store(location)
            self._stores[location] = (store, identity if identity is not None else _file_identity(location))
            if found is not None:
                _close_quietly(found[0])
            return store

    def plan(self, store: StateStore, deployment: str, digest: str) -> Plan:
        key = (store.location, deployment, digest)
        with self._lock:
            plan = self._plans.get(key)
            if plan is not None:
                self._plans.move_to_end(key)
                return plan
        data = store.blob(deployment, digest)
        if data is None:
            raise NonRecoverableError(f"the plan this operation belongs to is not in the state at {store.location}: "
                                      f"is this worker using the CLI's state (--state)?")
        plan = Plan.from_json(data.decode("utf-8"))
        with self._lock:
            self._plans[key] = plan
            while len(self._plans) > 32:
                self._plans.popitem(last=False)
        return plan

    def _blueprint(self, store: StateStore, deployment: str, digest: str | None, plan: Plan) -> BlueprintContext | None:
        if not digest or not plan.blueprint_path:
            return None
        target = files.unpacked(digest)
        if target is None:
            data = store.blob(deployment, digest)
            if data is None:
                return None
            target = files.unpack(digest, data)
        return BlueprintContext(str(target / Path(plan.blueprint_path).name))

    def _start_heartbeat(self) -> None:
        with self._lock:
            if self._heartbeat is not None:
                return
            self._heartbeat = threading.Thread(target=self._renew, name="claims", daemon=True)
            self._heartbeat.start()

    def _renew(self) -> None:
        """Keep this worker's claims alive while it lives (a killed worker's lapse, and its
        operations are sent again)."""
        while True:
            time.sleep(self.lease / 3)
            with self._lock:
                stores = [store for store, _ in self._stores.values()]
            for store in stores:
                try:
                    store.renew_claims(self.name, self.lease)
                except StateError:
                    pass


class LogLines:
    """One operation's ``ctx.logger`` lines, stored together: a transaction per line would make a
    chatty plugin wait on the state's round trip for each (a remote PostgreSQL's above all)."""

    DELAY = 0.1  # seconds a line waits for others before it is stored

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self._rows: list[tuple] = []
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def add(self, row: tuple) -> None:
        with self._lock:
            self._rows.append(row)
            if self._timer is None:  # the first line since the last store: store them all soon
                self._timer = threading.Timer(self.DELAY, self.flush)
                self._timer.daemon = True
                self._timer.start()

    def flush(self) -> None:
        with self._lock:
            rows, self._rows, self._timer = self._rows, [], None
        if rows:
            try:
                self.store.add_events(rows)
            except StateError:
                pass  # log lines are not worth failing the operation for

    def close(self) -> None:
        """Store what is left (before the outcome, so the CLI has every line when it hears of it)."""
        with self._lock:
            timer = self._timer
        if timer is not None:
            timer.cancel()
        self.flush()


def _file_identity(location: str) -> tuple[int, int] | None:
    try:
        st = os.stat(location)
    except OSError:
        return None
    return (st.st_dev, st.st_ino)


def _close_quietly(store: StateStore) -> None:
    try:
        store.close()
    except StateError:
        pass


class WorkerRecords(Mapping[str, InstanceRecord]):
    """Instance records for a worker's ``ctx``: the acting instances as the CLI sent them,
    any other (a relationship's peer, a ``get_attribute``) read from the state when asked."""

    def __init__(self, store: StateStore, deployment: str, plan: Plan, given: Mapping[str, dict[str, Any]]) -> None:
        self._store = store
        self._deployment = deployment
        self._plan = plan
        self._records = {iid: InstanceRecord(iid, plan.instances[iid].node, "", {}, dict(runtime))
                         for iid, runtime in given.items() if iid in plan.instances}

    def __getitem__(self, iid: str) -> InstanceRecord:
        rec = self._records.get(iid)
        if rec is None:
            if iid not in self._plan.instances:
                raise KeyError(iid)
            row = self._store.instances(self._deployment, [iid]).get(iid)
            node = self._plan.instances[iid].node
            rec = (InstanceRecord(iid, node, row.state, row.ops, row.runtime) if row is not None
                   else InstanceRecord(iid, node, "uninitialized", {}, {}))
            self._records[iid] = rec
        return rec

    def __iter__(self) -> Iterator[str]:
        return iter(self._plan.instances)

    def __len__(self) -> int:
        return len(self._plan.instances)

    def acting(self) -> dict[str, InstanceRecord]:
        return self._records


def _merge(ctx: OperationContext) -> None:
    """Fold the hook's changes into the records (nothing is written: they go back in the outcome)."""
    if ctx.source is not None and ctx.target is not None:
        ctx.source.instance._merge(persist=False)
        ctx.target.instance._merge(persist=False)
    else:
        ctx.instance._merge(persist=False)


def _diffs(records: WorkerRecords, given: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    acting = records.acting()
    result = {}
    for iid, before in given.items():
        rec = acting.get(iid)
        if rec is not None:
            diff = runtime_diff(before, rec.runtime)
            if diff is not None:
                result[iid] = diff
    return result


_current: Worker | None = None
_current_lock = threading.Lock()


def current_worker() -> Worker:
    """This process's worker (made with the installed plugins when ``orchestrator worker`` did not)."""
    global _current
    with _current_lock:
        if _current is None:
            from orchestrator.plugins import get_plugin_manager

            _current = Worker(get_plugin_manager())
        return _current


def set_worker(worker: Worker) -> None:
    global _current
    with _current_lock:
        _current = worker
