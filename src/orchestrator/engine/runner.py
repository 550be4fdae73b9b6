"""The install and uninstall workflows: scheduling, operations, retries, failures.

Instances run as soon as everything they depend on is done (not in lock-step waves),
at most ``concurrency`` at a time, each running its own operations in order. State is
written before and after every hook, so a rerun continues where a crash stopped.
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
from orchestrator.errors import NonRecoverableError, RecoverableError, SkipOperation
from orchestrator.plan import Plan, PlannedInstance, PlannedNode, PlannedRelationship
from orchestrator.secrets import missing_secret_message
from orchestrator.state import StateStore

log = logging.getLogger(__name__)


@attrs.define(slots=True)
class Options:
    concurrency: int = 10
    retries: int = 5
    retry_interval: float = 1.0  # first backoff; doubles each retry
    max_backoff: float = 30.0


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

    def __init__(self, graph: dict[str, set[str]], failed: threading.Event) -> None:
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(graph)
        self._sorter.prepare()
        self._ready: collections.deque[str] = collections.deque(self._sorter.get_ready())
        self._running = 0
        self._failed = failed
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
            if not self._running and (not self._ready or self._failed.is_set()):
                self._cond.notify_all()  # nothing more will become ready: let idle workers exit
            return self._next()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _next(self) -> str | None:
        while True:
            if self._failed.is_set():
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


class _Aborted(Exception):
    """Another instance failed while this one waited to retry."""


class Runner:
    """Runs one workflow of one deployment; build a new one per execution."""

    def __init__(self, *, plan: Plan, store: StateStore | None, deployment: str, dispatcher: Dispatcher,
                 sink: EventSink, options: Options, secrets: Mapping[str, Any] | None = None,
                 records: dict[str, InstanceRecord] | None = None) -> None:
        self.plan = plan
        self.store = store
        self.deployment = deployment
        self.dispatcher = dispatcher
        self.sink = sink
        self.options = options
        self.secrets = secrets or {}
        self.records = records if records is not None else self._load_records()
        self.failed = threading.Event()
        # Engine bookkeeping runs under one lock; a worker lets go of it only while a
        # plugin's hook runs or a retry waits. Hooks still run in parallel, but the
        # bookkeeping no longer ping-pongs the GIL between threads at every sqlite3 call.
        self._engine_lock = threading.Lock()
        self.failures: list[Failure] = []
        self.operations = 0
        self._count_lock = threading.Lock()
        self._deployment_ctx = DeploymentContext(deployment)
        self._blueprint_ctx = BlueprintContext(plan.blueprint_path)
        self._properties: dict[str, ImmutableProperties] = {}
        dispatcher.pm.masker = sink.masker  # hook tracing (ORCHESTRATOR_TRACE_HOOKS) masks like events do

    def _load_records(self) -> dict[str, InstanceRecord]:
        rows = self.store.instances(self.deployment) if self.store else {}
        records = {}
        for iid, inst in self.plan.instances.items():
            row = rows.get(iid)
            if row is None:
                records[iid] = InstanceRecord(iid, inst.node, "uninitialized", {}, {})
            else:
                records[iid] = InstanceRecord(iid, inst.node, row.state, row.ops, row.runtime)
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

    def _run(self, workflow: str, graph: dict[str, set[str]],
             work: Callable[[PlannedInstance], bool]) -> ExecutionResult:
        started = time.perf_counter()
        self.sink.emit(self.sink.make("workflow_started", f"{workflow} of {len(graph)} node instances started"))
        scheduler = _Scheduler(graph, self.failed)
        workers = [threading.Thread(target=self._worker, args=(scheduler, work), name=f"op-{n}", daemon=True)
                   for n in range(max(1, min(self.options.concurrency, len(graph))))]
        status = "succeeded"
        for worker in workers:
            worker.start()
        try:
            for worker in workers:
                while worker.is_alive():
                    worker.join(0.25)  # a timed join keeps Ctrl-C deliverable
        except KeyboardInterrupt:
            self.failed.set()
            scheduler.wake_all()
            status = "cancelled"
            for worker in workers:
                worker.join()
        if status != "cancelled" and (self.failures or self.failed.is_set()):
            status = "failed"
        elapsed = time.perf_counter() - started
        level = "info" if status == "succeeded" else "error"
        self.sink.emit(self.sink.make(f"workflow_{status}", f"{workflow} {status} in {elapsed:.2f}s",
                                      level=level))
        return ExecutionResult(workflow, self.deployment, self.sink.execution, status, self.failures,
                               elapsed, self.operations)

    def _worker(self, scheduler: _Scheduler, work: Callable[[PlannedInstance], bool]) -> None:
        """Take ready instances until none is left (or a failure stops new work)."""
        iid = scheduler.take()
        while iid is not None:
            with self._engine_lock:
                ok = self._guarded(work, self.plan.instances[iid])
            iid = scheduler.finish_and_take(iid, ok)

    def _guarded(self, work: Callable[[PlannedInstance], bool], inst: PlannedInstance) -> bool:
        try:
            return work(inst)
        except _Aborted:
            return False
        except BaseException as exc:  # an engine bug must not hang the scheduler
            self._fail(inst.id, "engine", None, f"internal error: {type(exc).__name__}: {exc}",
                       traceback.format_exc())
            return False

    # -- one instance -------------------------------------------------------------

    def _install_instance(self, inst: PlannedInstance) -> bool:
        return self._run_steps(inst, install_steps(inst), "started")

    def _finished(self, rec: InstanceRecord, what: str) -> Event:
        return self.sink.make("instance_finished", what, rec.id)

    def _uninstall_instance(self, inst: PlannedInstance) -> bool:
        rec = self.records[inst.id]
        steps = list(uninstall_steps(inst, rec.ops))
        if not self._run_steps(inst, steps, None):
            return False
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
        (idempotent) operation runs again on resume.
        """
        rec = self.records[inst.id]
        node = self.plan.nodes[inst.node]
        pending = _Pending()
        for step in steps:
            if rec.ops.get(step.key) == "succeeded":
                continue
            if self.failed.is_set():
                self._flush(rec, pending)
                return False
            rel = inst.relationships[step.relationship] if step.relationship is not None else None
            owner = rel.owner if rel is not None else node.owner
            caller = self.dispatcher.caller(owner, step.op)
            if caller is None:  # nothing implements it: nothing to do
                rec.ops[step.key] = "succeeded"
                continue
            if not self._run_step(inst, node, rel, rec, step, owner, caller, pending):
                return False
        if pending or (final is not None and rec.state != final):
            if final is not None:
                pending.events.append(self._finished(rec, final))
            self._flush(rec, pending, final)
        return True

    def _run_step(self, inst: PlannedInstance, node: PlannedNode, rel: PlannedRelationship | None,
                  rec: InstanceRecord, step: Step, owner: str | None, caller: Any, pending: _Pending) -> bool:
        attempt = 0
        while True:
            ctx = self._context(inst, node, rel, rec, step, attempt, owner)
            if step.before:
                rec.state = step.before
            rec.ops[step.key] = "started"
            pending.events.append(self.sink.make("operation_started", f"{step.op} started", rec.id, step.op, owner))
            self._flush(rec, pending)
            self.operations += 1  # the GIL makes this exact; it is only a count
            try:
                self._unlocked(caller, ctx=ctx)
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
                if self._unlocked(self.failed.wait, delay):
                    raise _Aborted() from None
                attempt += 1
                continue
            try:
                pending.runtime |= self._merge_runtime(ctx)
            except NonRecoverableError as exc:
                return self._give_up(inst, rec, step, owner, _message(exc), exc)
            rec.ops[step.key] = "succeeded"
            if step.after:
                rec.state = step.after
            pending.events.append(self.sink.make("operation_succeeded", f"{step.op} succeeded", rec.id, step.op,
                                                 owner))
            return True

    def _unlocked(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run ``fn`` (a plugin's hook, a retry wait) without the engine lock."""
        self._engine_lock.release()
        try:
            return fn(*args, **kwargs)
        finally:
            self._engine_lock.acquire()

    def _backoff(self, exc: Exception, attempt: int) -> float:
        after = getattr(exc, "retry_after", None) if isinstance(exc, RecoverableError) else None
        if after is not None:
            return max(0.0, float(after))
        return min(self.options.retry_interval * (2 ** attempt), self.options.max_backoff)

    def _give_up(self, inst: PlannedInstance, rec: InstanceRecord, step: Step, owner: str | None,
                 message: str, exc: BaseException) -> bool:
        rec.ops[step.key] = "failed"
        tb = "".join(traceback.format_exception(exc))
        failed = self.sink.make("operation_failed", f"{step.op} failed: {message}", rec.id, step.op, owner, "error")
        self._write(rec, rec.state, None, [failed])
        self._fail(inst.id, step.op, owner, message, tb)
        return False

    def _fail(self, instance: str, operation: str, plugin: str | None, message: str, tb: str) -> None:
        with self._count_lock:
            self.failures.append(Failure(instance, operation, plugin, self.sink.masker(message),
                                         self.sink.masker(tb)))
        self.failed.set()

    # -- state and events ---------------------------------------------------------

    def _flush(self, rec: InstanceRecord, pending: _Pending, state: str | None = None) -> None:
        """Write the instance's state with whatever success is pending, then forget it."""
        runtime = rec.runtime_json if pending.runtime else None
        events, pending.events, pending.runtime = pending.events, [], False
        self._write(rec, state or rec.state, runtime, events)

    def _write(self, rec: InstanceRecord, state: str, runtime_json: str | None, events: list[Event]) -> None:
        rec.state = state
        if self.store is not None:
            rows = [EventSink.row(e) for e in events]
            with rec.lock:  # same order as _persist: record lock, then the store's
                runtime = rec.runtime_json if runtime_json is not None else None
                self.store.record(self.deployment, rec.id, state, json.dumps(rec.ops), runtime, rows)
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
            with rec.lock:
                self.store.save_runtime(self.deployment, rec.id, rec.runtime_json)

    # -- contexts -----------------------------------------------------------------

    def _context(self, inst: PlannedInstance, node: PlannedNode, rel: PlannedRelationship | None,
                 rec: InstanceRecord, step: Step, attempt: int, owner: str | None) -> OperationContext:
        operation = OperationInfo(step.op, attempt, self.options.retries)
        sink, instance_id, op = self.sink, inst.id, step.op

        def emit(level: str, text: str) -> None:
            sink.emit(sink.make("log", text, instance_id, op, owner, level))

        logger = OperationLogger(f"{inst.id}.{step.op}", emit)
        if rel is None:
            return OperationContext(
                type="node-instance", deployment=self._deployment_ctx, blueprint=self._blueprint_ctx,
                operation=operation, logger=logger, plugin=owner,
                node=self._node_context(node, inst, None),
                instance=InstanceContext(rec, inst.host_id, self._persist, lambda: self._relationships(inst)))
        target_inst = self.plan.instances[rel.target_id]
        target_node = self.plan.nodes[target_inst.node]
        pair = (inst, target_inst)
        source = EntityContext(self._node_context(node, inst, pair),
                               InstanceContext(rec, inst.host_id, self._persist))
        target = EntityContext(self._node_context(target_node, target_inst, pair),
                               InstanceContext(self.records[target_inst.id], target_inst.host_id, self._persist))
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
        if not node.runtime_paths:
            props = self._properties.get(node.name)
            if props is None:
                props = self._properties[node.name] = ImmutableProperties(node.properties)
        else:
            lookup = RuntimeLookup(self, inst, pair)
            values = dict(node.properties)
            for name in node.runtime_paths:
                try:
                    values[name] = resolve_runtime(values[name], lookup)
                except MissingSecret as exc:  # only a hook that reads this property fails
                    values[name] = Unresolved(str(exc))
            props = ImmutableProperties(values)
        return NodeContext(node.name, node.type, node.hierarchy, props)


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
