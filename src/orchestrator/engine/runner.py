"""The install and uninstall workflows: scheduling, operations, retries, failures.

Instances run as soon as everything they depend on is done (not in lock-step waves),
at most ``concurrency`` at a time, each running its own operations in order. State is
written before and after every hook, so a rerun continues where a crash stopped.

The calling thread supervises: it handles stop requests (the first lets running hooks
finish, the second abandons them), operation timeouts (a hung hook's instance is handed
to a new worker thread, for a retry or a failure; the hung thread's late results are
discarded) and a lost lock. Hooks run in daemon threads, so a hung one never keeps the
process alive once the run is over.
"""

from __future__ import annotations

import collections
import graphlib
import json
import logging
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import attrs

from orchestrator.dsl.functions import SELF, SOURCE, TARGET, resolve_runtime, walk_path
from orchestrator.dsl.model import MISSING
from orchestrator.engine.context import (
    BlueprintContext,
    DeploymentContext,
    EntityContext,
    ImmutableProperties,
    InstanceContext,
    InstanceRecord,
    NodeContext,
    OperationContext,
    OperationInfo,
    OperationLogger,
    RelationshipContext,
    Unresolved,
)
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import Event, EventSink
from orchestrator.engine.interrupt import Interrupt
from orchestrator.errors import NonRecoverableError, RecoverableError, SkipOperation, StateError
from orchestrator.plan import Plan, PlannedInstance, PlannedNode, PlannedRelationship
from orchestrator.secrets import missing_secret_message, secret_strings
from orchestrator.state import StateStore

log = logging.getLogger(__name__)


DEFAULT_OPERATION_TIMEOUT = 3600.0
POLL = 0.1  # seconds between the supervisor's looks at signals, timeouts and the lock


@attrs.define(slots=True)
class Options:
    concurrency: int = 10
    retries: int = 5
    retry_interval: float = 1.0  # first backoff; doubles each retry
    max_backoff: float = 30.0
    operation_timeout: float = DEFAULT_OPERATION_TIMEOUT  # per hook call; a template may override it
    ignore_failures: bool = False  # uninstall: go on past failed operations, report what may be left


@attrs.define(slots=True)
class Failure:
    instance: str
    operation: str
    plugin: str | None
    message: str
    traceback: str = ""

    def __str__(self) -> str:
        return f"{self.instance}: {self.operation} ({self.plugin or 'no plugin'}) failed: {self.message}"


@attrs.define(slots=True)
class ExecutionResult:
    workflow: str
    deployment: str
    execution: int | None
    status: str  # succeeded | failed | cancelled
    failures: list[Failure]
    duration: float
    operations: int  # hook calls that ran (attempts included)
    abandoned: list[str] = attrs.field(factory=list)  # hooks left running by a second stop request
    notes: list[str] = attrs.field(factory=list)  # state or lock trouble, said once
    # --ignore-failures: the failures of instances that are not gone (their resources may remain)
    left_behind: list[Failure] = attrs.field(factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@attrs.define(slots=True, frozen=True)
class Step:
    op: str
    key: str
    relationship: int | None  # index into the instance's relationships
    before: str | None  # instance state while the hook runs
    after: str | None  # instance state once it succeeded


def install_steps(inst: PlannedInstance) -> Iterator[Step]:
    rels = range(len(inst.relationships))
    yield Step("create", "create", None, "creating", "created")
    for i in rels:
        yield Step("preconfigure", f"preconfigure:{i}", i, None, None)
    yield Step("configure", "configure", None, "configuring", "configured")
    for i in rels:
        yield Step("postconfigure", f"postconfigure:{i}", i, None, None)
    yield Step("start", "start", None, "starting", "started")
    for i in rels:
        yield Step("establish", f"establish:{i}", i, None, None)


def uninstall_steps(inst: PlannedInstance, ops: Mapping[str, str]) -> Iterator[Step]:
    """Only what install attempted: stop if start ran, unlink if establish ran, delete if create ran."""
    if "start" in ops:
        yield Step("stop", "stop", None, "stopping", "stopped")
    for i in reversed(range(len(inst.relationships))):
        if f"establish:{i}" in ops:
            yield Step("unlink", f"unlink:{i}", i, None, None)
    if "create" in ops:
        yield Step("delete", "delete", None, "deleting", "deleted")


class _Scheduler:
    """Hands ready instances to worker threads; a finished instance releases its dependents.

    Workers take the next instance themselves under one lock, so a fast operation costs
    no thread switch (a central dispatcher thread would cost two per instance).
    """

    def __init__(self, graph: dict[str, set[str]], stop: threading.Event) -> None:
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(graph)
        self._sorter.prepare()
        self._ready: collections.deque[str] = collections.deque(self._sorter.get_ready())
        self._running = 0
        self._stop = stop
        self._cond = threading.Condition()

    def take(self) -> str | None:
        with self._cond:
            return self._next()

    def finish_and_take(self, iid: str, ok: bool) -> str | None:
        with self._cond:
            self._running -= 1
            if ok:
                self._sorter.done(iid)
                released = self._sorter.get_ready()
                if released:
                    self._ready.extend(released)
                    if len(released) > 1:  # this worker takes one itself
                        self._cond.notify(len(released) - 1)
            if not self._running and (not self._ready or self._stop.is_set()):
                self._cond.notify_all()  # nothing more will become ready: let idle workers exit
            return self._next()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next(self) -> str | None:
        while True:
            if self._stop.is_set():
                return None
            if self._ready:
                self._running += 1
                return self._ready.popleft()
            if not self._running:
                return None
            self._cond.wait()


class _Pending:
    """A success not yet written: its events, and whether runtime properties changed."""

    __slots__ = ("events", "runtime")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.runtime = False

    def __bool__(self) -> bool:
        return bool(self.events) or self.runtime


class _Running:
    """One hook call in progress: what the supervisor needs to time it out or abandon it."""

    __slots__ = ("attempt", "deadline", "detached", "instance", "owner", "step", "timeout")

    def __init__(self, instance: str, step: Step, attempt: int, owner: str | None, timeout: float) -> None:
        self.instance = instance
        self.step = step
        self.attempt = attempt
        self.owner = owner
        self.timeout = timeout
        self.deadline = 0.0
        self.detached = False  # timed out or abandoned: whatever the hook does now is discarded

    def live(self) -> bool:
        return not self.detached

    def __str__(self) -> str:
        return f"{self.instance}: {self.step.op} ({self.owner or 'no plugin'})"


class _Aborted(Exception):
    """Another instance failed (or a stop was requested) while this one waited to retry."""


class _Detached(BaseException):
    """This thread's operation was timed out or abandoned: it must not record anything more."""


class Runner:
    """Runs one workflow of one deployment; build a new one per execution."""

    def __init__(self, *, plan: Plan, store: StateStore | None, deployment: str, dispatcher: Dispatcher,
                 sink: EventSink, options: Options, secrets: Mapping[str, Any] | None = None,
                 records: dict[str, InstanceRecord] | None = None, interrupt: Interrupt | None = None) -> None:
        self.plan = plan
        self.store = store
        self.deployment = deployment
        self.dispatcher = dispatcher
        self.sink = sink
        self.options = options
        self.secrets = secrets or {}
        self.interrupt = interrupt
        self.records = records if records is not None else self._load_records()
        self.stop = threading.Event()  # set: no new operation starts (a failure, a stop request, ...)
        # Engine bookkeeping runs under one lock; a worker lets go of it only while a
        # plugin's hook runs or a retry waits. Hooks still run in parallel, but the
        # bookkeeping no longer ping-pongs the GIL between threads at every sqlite3 call.
        self._engine_lock = threading.Lock()
        self.failures: list[Failure] = []
        self.operations = 0
        self.cancelled: str | None = None  # why a stop was requested
        self.abandoned: list[str] = []
        self.notes: list[str] = []
        self._abandoned = False
        self._lock_lost: str | None = None
        self._state_error: StateError | None = None
        self._count_lock = threading.Lock()
        self._running: dict[int, _Running] = {}  # hook calls in progress (under the engine lock)
        self._attempts: dict[tuple[str, str], int] = {}  # retries owed to timed-out operations
        self._active = 0  # worker threads not detached
        self._idle = threading.Event()
        self._scheduler: _Scheduler | None = None
        self._work: Callable[[PlannedInstance], bool] = self._install_instance
        self._deployment_ctx = DeploymentContext(deployment)
        self._blueprint_ctx = BlueprintContext(plan.blueprint_path)
        self._nodes: dict[str, NodeContext] = {}  # contexts of nodes without run-time properties
        dispatcher.pm.masker = sink.masker  # hook tracing (ORCHESTRATOR_TRACE_HOOKS) masks like events do

    def _load_records(self) -> dict[str, InstanceRecord]:
        """The instances as stored; values a plugin copied from a secret are masked from here on,
        even when this execution does not have the secret itself."""
        rows = self.store.instances(self.deployment) if self.store else {}
        records = {}
        for iid, inst in self.plan.instances.items():
            row = rows.get(iid)
            if row is None:
                records[iid] = InstanceRecord(iid, inst.node, "uninitialized", {}, {})
                continue
            records[iid] = InstanceRecord(iid, inst.node, row.state, row.ops, row.runtime, row.error)
            if row.secret_keys:
                self.sink.masker.add(s for k in row.secret_keys for s in secret_strings(row.runtime.get(k)))
        return records

    # -- workflows ---------------------------------------------------------------

    def install(self) -> ExecutionResult:
        for rec in self.records.values():
            _prepare_for_install(rec)
        graph = {iid: set(inst.targets) for iid, inst in self.plan.instances.items()}
        return self._run("install", graph, self._install_instance)

    def uninstall(self) -> ExecutionResult:
        graph = {iid: set(ids) for iid, ids in self.plan.dependents().items()}
        return self._run("uninstall", graph, self._uninstall_instance)

    def lock_lost(self, why: str) -> None:
        """Called by the lease keeper (another thread): the supervisor stops the run."""
        self._lock_lost = why

    def _run(self, workflow: str, graph: dict[str, set[str]],
             work: Callable[[PlannedInstance], bool]) -> ExecutionResult:
        started = time.perf_counter()
        self._emit(self.sink.make("workflow_started", f"{workflow} of {len(graph)} node instances started"))
        self._scheduler, self._work = _Scheduler(graph, self.stop), work
        self._stop_requested()  # asked before anything started: nothing will
        workers = max(1, min(self.options.concurrency, len(graph)))
        self._active = workers
        for _ in range(workers):
            self._spawn(None)
        self._supervise()
        status = self._status()
        elapsed = time.perf_counter() - started
        level = "info" if status == "succeeded" else "error"
        self._emit(self.sink.make(f"workflow_{status}", f"{workflow} {status} in {elapsed:.2f}s", level=level))
        if self._state_error is not None:
            self.notes.insert(0, str(self._state_error))
        left = ([f for f in self.failures if f.instance in self.records and self.records[f.instance].state != "deleted"]
                if self.options.ignore_failures else [])
        return ExecutionResult(workflow, self.deployment, self.sink.execution, status, self.failures, elapsed,
                               self.operations, self.abandoned, self.notes, left)

    def _status(self) -> str:
        if self.cancelled is not None:
            return "cancelled"
        if self._state_error is not None or self._lock_lost is not None:
            return "failed"
        if self.failures and not self.options.ignore_failures:
            return "failed"
        return "succeeded"

    def _emit(self, event: Event) -> None:
        """An event from the supervising thread; a state that can take no more writes is said once."""
        try:
            self.sink.emit(event)
        except StateError as exc:
            self._state_failed(exc)

    # -- supervision (the calling thread) -------------------------------------------

    def _supervise(self) -> None:
        """Wait for the workers, acting on stop requests, timeouts and a lost lock meanwhile."""
        while not self._idle.wait(POLL):
            if self._stop_requested():
                return
            if self._running:
                self._check_timeouts()
            if self._lock_lost is not None and not self.notes:
                self.notes.append(f"this execution stopped: {self._lock_lost}")
                self.stop.set()
                self._wake()

    def _stop_requested(self) -> bool:
        """Act on new stop requests: the first cancels, the second abandons (then True)."""
        count = self.interrupt.count if self.interrupt is not None else 0
        if count and self.cancelled is None:
            self._cancel(self.interrupt.reason if self.interrupt is not None else "")
        if count >= 2 and not self._abandoned:
            self._abandon()
            return True
        return False

    def _wake(self) -> None:
        if self._scheduler is not None:
            self._scheduler.wake_all()

    def _cancel(self, reason: str) -> None:
        self.cancelled = reason or "stop requested"
        self.stop.set()
        self._wake()
        n = len(self._running)
        waiting = (f"waiting for {n} running operation{'s' if n != 1 else ''} (Ctrl+C again to abandon them)"
                   if n else "nothing is running")
        self._emit(self.sink.make("workflow_cancelling", f"{self.cancelled}: no new operations will start; "
                                  f"{waiting}", level="warning"))

    def _abandon(self) -> None:
        with self._engine_lock:
            self._abandoned = True
            running = list(self._running.values())
            for op in running:
                op.detached = True
            self.abandoned = [str(op) for op in running]
        self.stop.set()
        self._wake()
        if running:
            self._emit(self.sink.make(
                "workflow_cancelling", f"abandoned {len(running)} running operation{'s' if len(running) != 1 else ''} "
                f"({'; '.join(self.abandoned)}): they stay recorded as in progress and run again on resume",
                level="warning"))

    def _check_timeouts(self) -> None:
        now = time.monotonic()
        expired = [op for op in list(self._running.values()) if op.deadline <= now]
        if not expired:
            return
        with self._engine_lock:
            for op in expired:
                if self._running.pop(id(op), None) is None:
                    continue  # it finished meanwhile
                op.detached = True
                with self._count_lock:
                    self._active -= 1  # its worker is stuck in the hook; _timed_out starts another
                try:
                    self._timed_out(op)
                except StateError as exc:
                    self._state_failed(exc)
                    with self._count_lock:
                        if self._active <= 0:
                            self._idle.set()

    def _timed_out(self, op: _Running) -> None:
        """Hand a hung operation's instance to a new worker: a retry per policy, or its failure."""
        inst, rec = self.plan.instances[op.instance], self.records[op.instance]
        message = f"timed out after {op.timeout:g}s"
        if op.attempt < self.options.retries and not self.stop.is_set():
            delay = self._backoff(None, op.attempt)
            self._attempts[(op.instance, op.step.key)] = op.attempt + 1
            self.sink.emit(self.sink.make(
                "operation_retrying", f"{op.step.op} {message}; will be retried in {delay:.1f}s (retry "
                f"{op.attempt + 1} of {self.options.retries})", op.instance, op.step.op, op.owner, "warning"))
            self._spawn((op.instance, delay))
            return
        if op.attempt:
            message += f" (gave up after {op.attempt} retries)"
        self._give_up(inst, rec, op.step, op.owner, message, None)
        self._spawn((op.instance, None))

    # -- workers --------------------------------------------------------------------

    def _spawn(self, first: tuple[str, float | None] | None) -> None:
        """Start a worker; with ``first``, it first takes over an instance whose worker hung:
        ``(id, delay)`` retries it after ``delay`` seconds, ``(id, None)`` reports it failed."""
        if first is not None:
            with self._count_lock:
                self._active += 1
        threading.Thread(target=self._worker, args=(first,), name="op", daemon=True).start()

    def _worker(self, first: tuple[str, float | None] | None) -> None:
        """Take ready instances until none is left (or a failure stops new work)."""
        scheduler, work, ignore = self._scheduler, self._work, self.options.ignore_failures
        assert scheduler is not None
        detached = False
        try:
            if first is None:
                iid = scheduler.take()
            else:
                iid, delay = first
                ok = False
                if delay is not None:
                    with self._engine_lock:
                        ok = not self._unlocked(self.stop.wait, delay) and self._guarded(
                            work, self.plan.instances[iid])
                iid = scheduler.finish_and_take(iid, ok or ignore)
            while iid is not None:
                with self._engine_lock:
                    ok = self._guarded(work, self.plan.instances[iid])
                iid = scheduler.finish_and_take(iid, ok or ignore)
        except _Detached:
            detached = True  # another worker has this instance now; this thread just ends
        finally:
            if not detached:
                with self._count_lock:
                    self._active -= 1
                    if self._active <= 0:
                        self._idle.set()

    def _guarded(self, work: Callable[[PlannedInstance], bool], inst: PlannedInstance) -> bool:
        try:
            return work(inst)
        except _Detached:
            raise
        except _Aborted:
            return False
        except StateError as exc:
            self._state_failed(exc)
            return False
        except BaseException as exc:  # an engine bug must not hang the scheduler
            masker = self.sink.masker
            self._fail(Failure(inst.id, "engine", None, masker(f"internal error: {type(exc).__name__}: {exc}"),
                               masker(traceback.format_exc())))
            return False

    def _state_failed(self, exc: StateError) -> None:
        """The state took no more writes (disk full, lock lost): stop, and say it once."""
        with self._count_lock:
            if self._state_error is None:
                self._state_error = exc
        self.stop.set()
        self._wake()

    # -- one instance -------------------------------------------------------------

    def _install_instance(self, inst: PlannedInstance) -> bool:
        return self._run_steps(inst, install_steps(inst), "started")

    def _finished(self, rec: InstanceRecord, what: str) -> Event:
        return self.sink.make("instance_finished", what, rec.id)

    def _uninstall_instance(self, inst: PlannedInstance) -> bool:
        rec = self.records[inst.id]
        steps = list(uninstall_steps(inst, rec.ops))
        if not self._run_steps(inst, steps, None) and not (
                self.options.ignore_failures and rec.ops.get("delete") == "succeeded"):
            return False  # (with --ignore-failures, an instance whose delete worked is gone all the same)
        if steps or rec.state not in ("uninitialized", "deleted") or rec.runtime:
            with rec.lock:
                rec.runtime, rec.runtime_json, rec.ops = {}, "{}", {}
            final = "deleted" if steps else "uninitialized"
            self._write(rec, final, "{}", [self._finished(rec, final)])
        return True

    def _run_steps(self, inst: PlannedInstance, steps: Iterable[Step], final: str | None) -> bool:
        """Run the steps not yet done, in order; state writes are merged where nothing happens between.

        A success is not written on its own: it rides with the next operation's
        "started" write (or the final one), which halves the writes per operation.
        Between the two only bookkeeping runs, so a crash there just means the
        (idempotent) operation runs again on resume. With ``ignore_failures`` a failed
        step does not stop the next ones (an uninstall still deletes what it could not stop).
        """
        rec = self.records[inst.id]
        node = self.plan.nodes[inst.node]
        pending = _Pending()
        failed = False
        for step in steps:
            if rec.ops.get(step.key) == "succeeded":
                continue
            if self.stop.is_set():
                self._flush(rec, pending)
                return False
            rel = inst.relationships[step.relationship] if step.relationship is not None else None
            owner = rel.owner if rel is not None else node.owner
            caller = self.dispatcher.caller(owner, step.op)
            if caller is None:  # nothing implements it: nothing to do
                rec.ops[step.key] = "succeeded"
                continue
            if not self._run_step(inst, node, rel, rec, step, owner, caller, pending):
                if not self.options.ignore_failures:
                    return False
                failed = True
        if failed:
            self._flush(rec, pending)
            return False
        if pending or (final is not None and rec.state != final):
            if final is not None:
                pending.events.append(self._finished(rec, final))
            self._flush(rec, pending, final)
        return True

    def _run_step(self, inst: PlannedInstance, node: PlannedNode, rel: PlannedRelationship | None,
                  rec: InstanceRecord, step: Step, owner: str | None, caller: Any, pending: _Pending) -> bool:
        attempt = self._attempts.pop((inst.id, step.key), 0) if self._attempts else 0
        timeout = node.operation_timeout or self.options.operation_timeout
        while True:
            op = _Running(inst.id, step, attempt, owner, timeout)
            ctx = self._context(inst, node, rel, rec, step, attempt, owner, op)
            if step.before:
                rec.state = step.before
            rec.ops[step.key] = "started"
            pending.events.append(self.sink.make("operation_started", f"{step.op} started", rec.id, step.op, owner))
            self._flush(rec, pending)
            self.operations += 1  # the GIL makes this exact; it is only a count
            try:
                self._call_hook(caller, ctx, op)
            except _Detached:
                raise
            except SkipOperation as exc:
                rec.ops[step.key] = "succeeded"
                if step.after:
                    rec.state = step.after
                pending.events.append(self.sink.make("operation_skipped", f"{step.op} skipped: {exc}",
                                                     rec.id, step.op, owner))
                return True
            except NonRecoverableError as exc:
                self._save_runtime(ctx)
                return self._give_up(inst, rec, step, owner, _message(exc), exc)
            except Exception as exc:
                self._save_runtime(ctx)
                if attempt >= self.options.retries:
                    return self._give_up(inst, rec, step, owner,
                                         f"{_message(exc)} (gave up after {attempt} retries)", exc)
                delay = self._backoff(exc, attempt)
                self.sink.emit(self.sink.make(
                    "operation_retrying", f"{step.op} will be retried in {delay:.1f}s (retry {attempt + 1} of "
                    f"{self.options.retries}): {_message(exc)}", rec.id, step.op, owner, "warning"))
                if self._unlocked(self.stop.wait, delay):
                    raise _Aborted() from None
                attempt += 1
                continue
            except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... raised by the plugin itself
                self._save_runtime(ctx)
                return self._give_up(inst, rec, step, owner, f"{_message(exc)} (raised by the plugin; not retried)",
                                     exc)
            try:
                pending.runtime |= self._merge_runtime(ctx)
            except NonRecoverableError as exc:
                return self._give_up(inst, rec, step, owner, _message(exc), exc)
            rec.ops[step.key] = "succeeded"
            rec.error = None
            if step.after:
                rec.state = step.after
            pending.events.append(self.sink.make("operation_succeeded", f"{step.op} succeeded", rec.id, step.op,
                                                 owner))
            return True

    def _call_hook(self, caller: Any, ctx: OperationContext, op: _Running) -> None:
        """Run a plugin's hook without the engine lock, where the supervisor can time it out."""
        op.deadline = time.monotonic() + op.timeout
        key = id(op)
        self._running[key] = op
        self._engine_lock.release()
        try:
            caller(ctx=ctx)
        finally:
            self._engine_lock.acquire()
            self._running.pop(key, None)
            if op.detached:
                raise _Detached()

    def _unlocked(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` (a retry wait) without the engine lock."""
        self._engine_lock.release()
        try:
            return fn(*args, **kwargs)
        finally:
            self._engine_lock.acquire()
            if self._abandoned:
                raise _Detached()

    def _backoff(self, exc: Exception | None, attempt: int) -> float:
        after = getattr(exc, "retry_after", None) if isinstance(exc, RecoverableError) else None
        if after is not None:
            return max(0.0, float(after))
        return min(self.options.retry_interval * (2 ** attempt), self.options.max_backoff)

    def _give_up(self, inst: PlannedInstance, rec: InstanceRecord, step: Step, owner: str | None,
                 message: str, exc: BaseException | None) -> bool:
        rec.ops[step.key] = "failed"
        tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
        failed = self.sink.make("operation_failed", f"{step.op} failed: {message}", rec.id, step.op, owner, "error")
        failure = Failure(inst.id, step.op, owner, self.sink.masker(message), self.sink.masker(tb))
        rec.error = f"{step.op} ({owner or 'no plugin'}) failed: {failure.message}"
        self._write(rec, "failed", None, [failed])
        self._fail(failure)
        return False

    def _fail(self, failure: Failure) -> None:
        with self._count_lock:
            self.failures.append(failure)
        if not self.options.ignore_failures:
            self.stop.set()

    # -- state and events ---------------------------------------------------------

    def _flush(self, rec: InstanceRecord, pending: _Pending, state: str | None = None) -> None:
        """Write the instance's state with whatever success is pending, then forget it."""
        runtime = rec.runtime_json if pending.runtime else None
        events, pending.events, pending.runtime = pending.events, [], False
        self._write(rec, state or rec.state, runtime, events)

    def _write(self, rec: InstanceRecord, state: str, runtime_json: str | None, events: list[Event]) -> None:
        if self._abandoned:
            raise _Detached()  # the execution is over: record nothing more
        rec.state = state
        if self.store is not None:
            rows = [EventSink.row(e) for e in events]
            masker = self.sink.masker
            with rec.lock:  # same order as _persist: record lock, then the store's
                runtime = rec.runtime_json if runtime_json is not None else None
                keys = masker.secret_keys(rec.runtime) if runtime is not None and masker else None
                self.store.record(self.deployment, rec.id, state, json.dumps(rec.ops), runtime, rows,
                                  self.sink.execution, rec.error, keys)
        for event in events:
            self.sink.publish(event)

    def _merge_runtime(self, ctx: OperationContext) -> bool:
        """Merge the runtime properties the hook changed; True if the acting instance changed."""
        if ctx.source is not None and ctx.target is not None:
            changed = ctx.source.instance._merge(persist=False)
            ctx.target.instance._merge(persist=True)
            return changed
        return ctx.instance._merge(persist=False)

    def _save_runtime(self, ctx: OperationContext) -> None:
        """After a failed attempt: keep what the hook saved, so a retry or resume sees it."""
        try:
            if ctx.source is not None and ctx.target is not None:
                ctx.source.instance._merge()
                ctx.target.instance._merge()
            else:
                ctx.instance._merge()
        except NonRecoverableError:
            pass

    def _persist(self, rec: InstanceRecord) -> None:
        """Write runtime properties; under the record's lock, so a stale copy never lands last."""
        if self.store is not None:
            masker = self.sink.masker
            with rec.lock:
                keys = masker.secret_keys(rec.runtime) if masker else None
                self.store.save_runtime(self.deployment, rec.id, rec.runtime_json, self.sink.execution, keys)

    # -- contexts -----------------------------------------------------------------

    def _context(self, inst: PlannedInstance, node: PlannedNode, rel: PlannedRelationship | None,
                 rec: InstanceRecord, step: Step, attempt: int, owner: str | None,
                 op: _Running | None = None) -> OperationContext:
        operation = OperationInfo(step.op, attempt, self.options.retries)
        sink, instance_id, name = self.sink, inst.id, step.op
        live = op.live if op is not None else None

        def emit(level: str, text: str) -> None:
            if live is None or live():  # a timed-out or abandoned hook's late logs are dropped
                sink.emit(sink.make("log", text, instance_id, name, owner, level))

        logger = OperationLogger(f"{inst.id}.{step.op}", emit)
        if rel is None:
            return OperationContext(
                type="node-instance", deployment=self._deployment_ctx, blueprint=self._blueprint_ctx,
                operation=operation, logger=logger, plugin=owner,
                node=self._node_context(node, inst, None),
                instance=InstanceContext(rec, inst.host_id, self._persist, lambda: self._relationships(inst), live))
        target_inst = self.plan.instances[rel.target_id]
        target_node = self.plan.nodes[target_inst.node]
        pair = (inst, target_inst)
        source = EntityContext(self._node_context(node, inst, pair),
                               InstanceContext(rec, inst.host_id, self._persist, None, live))
        target = EntityContext(self._node_context(target_node, target_inst, pair),
                               InstanceContext(self.records[target_inst.id], target_inst.host_id, self._persist,
                                               None, live))
        return OperationContext(
            type="relationship-instance", deployment=self._deployment_ctx, blueprint=self._blueprint_ctx,
            operation=operation, logger=logger, plugin=owner, source=source, target=target,
            relationship=RelationshipContext(rel.type, rel.hierarchy, ImmutableProperties(rel.properties), target))

    def _relationships(self, inst: PlannedInstance) -> list[RelationshipContext]:
        result = []
        for rel in inst.relationships:
            target_inst = self.plan.instances[rel.target_id]
            target = EntityContext(
                self._node_context(self.plan.nodes[target_inst.node], target_inst, None),
                InstanceContext(self.records[target_inst.id], target_inst.host_id, self._persist,
                                lambda t=target_inst: self._relationships(t)))
            result.append(RelationshipContext(rel.type, rel.hierarchy, ImmutableProperties(rel.properties), target))
        return result

    def _node_context(self, node: PlannedNode, inst: PlannedInstance,
                      pair: tuple[PlannedInstance, PlannedInstance] | None) -> NodeContext:
        if not node.runtime_paths:  # the same for every instance: built once
            cached = self._nodes.get(node.name)
            if cached is None:
                cached = self._nodes[node.name] = NodeContext(node.name, node.type, node.hierarchy,
                                                              ImmutableProperties(node.properties))
            return cached
        lookup = RuntimeLookup(self, inst, pair)
        values = dict(node.properties)
        for name in node.runtime_paths:
            try:
                values[name] = resolve_runtime(values[name], lookup)
            except MissingSecret as exc:  # only a hook that reads this property fails
                values[name] = Unresolved(str(exc))
        return NodeContext(node.name, node.type, node.hierarchy, ImmutableProperties(values))


class RuntimeLookup:
    """Resolves ``get_attribute`` and ``get_secret`` against live instances and secrets."""

    def __init__(self, runner: Runner, current: PlannedInstance | None,
                 pair: tuple[PlannedInstance, PlannedInstance] | None = None) -> None:
        self.runner = runner
        self.current = current
        self.pair = pair

    def get_attribute(self, args: list[Any]) -> Any:
        entity, attr, rest = args[0], args[1], list(args[2:])
        if entity == SELF:
            inst = self.current
        elif entity == SOURCE and self.pair:
            inst = self.pair[0]
        elif entity == TARGET and self.pair:
            inst = self.pair[1]
        else:
            inst = self._related(entity)
            if isinstance(inst, list):
                return [self._value(i, attr, rest) for i in inst]
        if inst is None:
            return None
        return self._value(inst, attr, rest)

    def _related(self, node_name: str) -> PlannedInstance | list[PlannedInstance] | None:
        plan = self.runner.plan
        ids = plan.nodes[node_name].instances if node_name in plan.nodes else []
        if len(ids) == 1:
            return plan.instances[ids[0]]
        if not ids:
            return None
        cur = self.current
        if cur is not None:
            related = [t for t in cur.targets if t in ids]
            if len(related) == 1:
                return plan.instances[related[0]]
            chain = set(_host_chain(plan, cur))
            same_host = [i for i in ids if chain & set(_host_chain(plan, plan.instances[i]))]
            if len(same_host) == 1:
                return plan.instances[same_host[0]]
            if cur.id in ids:
                return cur
        return [plan.instances[i] for i in ids]

    def _value(self, inst: PlannedInstance, attr: str, rest: list[Any]) -> Any:
        rec = self.runner.records[inst.id]
        with rec.lock:
            runtime = rec.runtime
        value = runtime.get(attr, MISSING)
        if value is MISSING:
            node = self.runner.plan.nodes[inst.node]
            value = node.properties.get(attr)
            if attr in node.runtime_paths:
                value = resolve_runtime(value, RuntimeLookup(self.runner, inst))
        value = walk_path(value, rest) if rest else value
        return None if value is MISSING else value

    def get_secret(self, args: Any) -> Any:
        path = [args] if isinstance(args, str) else list(args)
        name = path[0]
        if name not in self.runner.secrets:
            raise MissingSecret(missing_secret_message(name))
        value = walk_path(self.runner.secrets[name], path[1:])
        return None if value is MISSING else value


class MissingSecret(NonRecoverableError):
    """A ``get_secret`` whose value is not available to this execution."""


def _host_chain(plan: Plan, inst: PlannedInstance) -> list[str]:
    chain = []
    while inst.host_id is not None:
        chain.append(inst.host_id)
        inst = plan.instances[inst.host_id]
    return chain


def _prepare_for_install(rec: InstanceRecord) -> None:
    """An instance left half-uninstalled is brought back: what uninstall undid runs again."""
    if "delete" in rec.ops or rec.state == "deleted":
        rec.ops.clear()
        rec.state = "uninitialized"
    elif "stop" in rec.ops or any(k.startswith("unlink:") for k in rec.ops):
        for key in [k for k in rec.ops if k in ("start", "stop") or k.startswith(("establish:", "unlink:"))]:
            del rec.ops[key]


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    name = type(exc).__name__
    if isinstance(exc, (NonRecoverableError, RecoverableError)):
        return text or name
    return f"{name}: {text}" if text else name
