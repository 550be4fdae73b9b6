"""Running one instance's steps: hooks, retries, and the state written around them.

An instance is marked in progress *before* its hook runs, so after a crash the state
says which operations finished, which may have had side effects, and which never
started. That mark is committed; a success is only staged in the execution's journal
(``journal.py``): it rides with the next commit, usually the next operation's mark, of
this instance or another. A retry does not wait here: the instance is handed back to the
scheduler (``Deferred``) and its worker takes other work meanwhile.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import attrs

from orchestrator import jsonable
from orchestrator.engine.context import InstanceRecord, OperationContext
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import Event, EventSink, clipped, exception_text, traceback_text
from orchestrator.engine.executor import Call, Executor, LocalExecutor, Withdrawn
from orchestrator.engine.factory import ContextFactory
from orchestrator.engine.options import Options
from orchestrator.engine.results import Failure
from orchestrator.engine.workflows import Phase, Step
from orchestrator.errors import NonRecoverableError, RecoverableError, SkipOperation, StateError
from orchestrator.plan import PlannedInstance
from orchestrator.state import InstanceWrite, StateStore
from orchestrator.state.records import ops_json

RESULT_EVENT_LIMIT = 65536  # characters of a custom operation's result kept in its event


class Deferred(Exception):
    """The instance waits ``delay`` seconds for a retry, without its worker."""

    def __init__(self, delay: float) -> None:
        super().__init__(delay)
        self.delay = delay


class Detached(BaseException):
    """This thread's operation was timed out or abandoned: it must not record anything more."""


class Unrecorded(BaseException):
    """The operation's "started" mark did not reach the state: its hook must not run."""

    def __init__(self, error: StateError) -> None:
        super().__init__(error)
        self.error = error


class Running:
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


@attrs.define(eq=False)
class Execution:
    """What the threads of one execution share. Bookkeeping runs under ``lock``; a worker
    lets go of it only while a plugin's hook runs, so hooks run in parallel but the
    bookkeeping does not ping-pong the GIL between threads at every sqlite3 call."""

    store: StateStore
    deployment: str
    sink: EventSink
    dispatcher: Dispatcher
    options: Options
    records: dict[str, InstanceRecord]
    stop: threading.Event = attrs.field(factory=threading.Event)  # set: no new operation starts
    lock: threading.Lock = attrs.field(factory=threading.Lock)
    running: set[Running] = attrs.field(factory=set)  # hook calls in progress (under ``lock``)
    attempts: dict[tuple[str, str], int] = attrs.field(factory=dict)  # retries owed, by (instance, step)
    carried: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict)  # a transient step's runtime, to its retry
    failures: list[Failure] = attrs.field(factory=list)
    results: dict[str, Any] = attrs.field(factory=dict)  # what hooks returned, by instance (drift, ...)
    abandoned: bool = False  # a second stop request: record nothing more
    operations: int = 0  # hook calls made (the GIL makes the count exact; it is only a count)
    executor: Executor = attrs.field(factory=LocalExecutor)  # where hook calls run

    def fail(self, failure: Failure) -> None:
        self.failures.append(failure)  # under ``lock``
        if not self.options.ignore_failures:
            self.stop.set()


class _Pending:
    """A success not yet written: its events, whether runtime properties changed, and the
    worker dispatches it settles."""

    __slots__ = ("events", "forget", "runtime")

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.runtime = False
        self.forget: list[str] = []

    def __bool__(self) -> bool:
        return bool(self.events) or self.runtime or bool(self.forget)


class StepRunner:
    """Runs the steps of instances of one phase; called by workers holding ``execution.lock``."""

    def __init__(self, execution: Execution, phase: Phase, contexts: ContextFactory) -> None:
        self.ex = execution
        self.phase = phase
        self.plan = phase.plan
        self.contexts = contexts

    def run(self, inst: PlannedInstance) -> bool:
        """The instance's steps not done yet; False when one failed (``Deferred`` for a retry)."""
        rec = self.ex.records[inst.id]
        steps = self.phase.steps(inst, rec)
        removing = self.phase.removing(inst.id)
        pending = _Pending()
        ok = self._run_steps(inst, rec, steps, self.phase.done_state, pending, removing)
        if removing and (ok or (self.ex.options.ignore_failures and rec.ops.get("delete") == "succeeded")):
            # (with --ignore-failures, an instance whose delete worked is gone all the same)
            if steps or rec.state not in ("uninitialized", "deleted") or rec.runtime or pending:
                with rec.lock:
                    rec.runtime, rec.runtime_json, rec.ops = {}, "{}", {}
                final = "deleted" if steps else "uninitialized"
                pending.runtime = True  # the emptied runtime properties are written
                pending.events.append(self._finished(rec, final))
                self._flush(rec, pending, final)  # one write: the delete's success rides with the removal
            return True
        return ok

    def _finished(self, rec: InstanceRecord, what: str) -> Event:
        return self.ex.sink.make("instance_finished", what, rec.id)

    def _run_steps(self, inst: PlannedInstance, rec: InstanceRecord, steps: list[Step], final: str | None,
                   pending: _Pending, removing: bool = False) -> bool:
        """Run the steps not yet done, in order; with ``ignore_failures`` a failed step does not
        stop the next ones (an uninstall still deletes what it could not stop). When all went
        well and the instance is ``removing``, the last success is left in ``pending`` for the
        removal's write."""
        ex = self.ex
        node = self.plan.nodes[inst.node]
        failed = False
        for step in steps:
            if rec.ops.get(step.key) == "succeeded":
                continue
            if ex.stop.is_set():
                self._flush(rec, pending)
                return False
            rel = inst.relationships[step.relationship] if step.relationship is not None else None
            owner = rel.owner if rel is not None else node.owner
            caller = ex.dispatcher.caller(owner, step.op)
            if rel is None and node.disabled and step.op in node.disabled:
                caller = None  # the blueprint turned it off (Cloudify's ``op: {}``)
            if caller is None:  # nothing implements it: nothing to do
                if not step.transient:
                    rec.ops[step.key] = "succeeded"
                continue
            try:
                if step.transient:
                    done = self._check(inst, rec, step, owner, caller, node.operation_timeout)
                else:
                    done = self._run_step(inst, rec, step, owner, caller, pending, node.operation_timeout)
            except Deferred:
                self._flush(rec, pending)
                raise
            if not done:
                if not ex.options.ignore_failures:
                    return False
                failed = True
        if failed:
            self._flush(rec, pending)
            return False
        if removing:
            return True
        version = self.phase.version
        if pending or (final is not None and rec.state != final) or (version is not None and rec.version != version):
            if final is not None:
                pending.events.append(self._finished(rec, final))
            self._flush(rec, pending, final, version)
        return True

    def _run_step(self, inst: PlannedInstance, rec: InstanceRecord, step: Step, owner: str | None, caller: Any,
                  pending: _Pending, timeout: float | None) -> bool:
        ex = self.ex
        attempt = ex.attempts.pop((inst.id, step.key), 0) if ex.attempts else 0
        op = Running(inst.id, step, attempt, owner, timeout or ex.options.operation_timeout)
        changes = self.phase.changes.get(inst.id) if step.op == "update" else None
        ctx = self.contexts.operation(inst, step.op, attempt, step.relationship, owner, op.live, changes)
        remote = ex.executor.remote
        call = Call(inst.id, step.op, step.key, step.relationship, owner, attempt, self.plan, changes,
                    resumed=rec.ops.get(step.key) == "started") if remote else None  # a local hook needs ctx only
        if step.before:
            rec.state = step.before
        rec.ops[step.key] = "started"
        make = ex.sink.make
        pending.events.append(make("operation_started", f"{step.op} started", rec.id, step.op, owner))
        ticket = self._flush(rec, pending, commit=True)  # in the state before the hook runs (_call_hook)
        ex.operations += 1
        try:
            self._call_hook(caller, ctx, op, call, ticket)
        except Unrecorded as exc:
            raise exc.error from None
        except Detached:
            raise
        except Withdrawn:  # stopped before a worker took it: it never ran; resume runs it
            rec.ops[step.key] = "started"
            return False
        except SkipOperation as exc:
            if remote:
                pending.forget.append(step.key)
            rec.ops[step.key] = "succeeded"
            if step.after:
                rec.state = step.after
            pending.events.append(make("operation_skipped", f"{step.op} skipped: {exc}", rec.id, step.op, owner))
            return True
        except NonRecoverableError as exc:
            save_runtime(ctx)
            return self.give_up(inst, rec, step, owner, _message(exc), exc)
        except Exception as exc:
            save_runtime(ctx)
            if attempt >= ex.options.retries:
                return self.give_up(inst, rec, step, owner, f"{_message(exc)} (gave up after {attempt} retries)", exc)
            self.retry_later(inst.id, step, owner, attempt, _message(exc), backoff(ex.options, exc, attempt))
        except BaseException as exc:  # SystemExit, KeyboardInterrupt, ... raised by the plugin itself
            save_runtime(ctx)
            return self.give_up(inst, rec, step, owner, f"{_message(exc)} (raised by the plugin; not retried)", exc)
        try:
            pending.runtime |= _merge_runtime(ctx)
        except NonRecoverableError as exc:
            return self.give_up(inst, rec, step, owner, _message(exc), exc)
        if step.clears:
            for key in step.clears:
                rec.ops.pop(key, None)
        else:
            rec.ops[step.key] = "succeeded"
        if remote:
            pending.forget.append(step.key)  # settled by the same write that records the success
        rec.error = None
        if step.after:
            rec.state = step.after
        pending.events.append(make("operation_succeeded", f"{step.op} succeeded", rec.id, step.op, owner))
        return True

    def _check(self, inst: PlannedInstance, rec: InstanceRecord, step: Step, owner: str | None, caller: Any,
               timeout: float | None) -> bool:
        """A transient step (a drift check, a custom operation): its result is kept, the instance's
        record is not touched. What it changed in its runtime properties is not recorded either,
        but its retries in this execution start from it, so ``wait_until`` works there too."""
        ex = self.ex
        attempt = ex.attempts.pop((inst.id, step.key), 0) if ex.attempts else 0
        op = Running(inst.id, step, attempt, owner, timeout or ex.options.operation_timeout)
        spec = self.phase.custom if step.op == "run_operation" else None
        custom = (spec[0], spec[1].get(inst.node, {})) if spec is not None else None
        ctx = self.contexts.operation(inst, step.op, attempt, step.relationship, owner, op.live, custom=custom)
        carried = ex.carried.pop((inst.id, step.key), None) if ex.carried else None
        if carried is not None:  # where the last attempt got to (a wait in progress, a request sent)
            ctx.instance.runtime_properties.clear()
            ctx.instance.runtime_properties.update(carried)
        call = Call(inst.id, step.op, step.key, step.relationship, owner, attempt, self.plan, custom=custom,
                    transient=True)
        sink = ex.sink
        name = custom[0] if custom is not None else step.op
        self.emit(sink.make("operation_started", f"{name} started", rec.id, name, owner))
        ex.operations += 1
        try:
            result = self._call_hook(caller, ctx, op, call)
        except Detached:
            raise
        except Withdrawn:
            return False
        except Exception as exc:
            if isinstance(exc, RecoverableError) and attempt < ex.options.retries:
                ex.carried[(inst.id, step.key)] = ctx.instance.runtime_properties  # never recorded
                self.retry_later(inst.id, step, owner, attempt, _message(exc), backoff(ex.options, exc, attempt), name)
            return self._check_failed(inst, name, owner, _message(exc), exc)
        except BaseException as exc:
            return self._check_failed(inst, name, owner, f"{_message(exc)} (raised by the plugin)", exc)
        if custom is not None:  # what a custom operation returned is kept with the events, secrets masked
            result = self._custom_result(result, sink.masker)
            text = json.dumps(result, ensure_ascii=False)
            if len(text) > RESULT_EVENT_LIMIT:
                text = f"{text[:RESULT_EVENT_LIMIT]}... ({len(text)} characters; shown whole by execute)"
            self.emit(sink.make("operation_result", text, rec.id, name, owner))
        ex.results[inst.id] = result
        self.emit(sink.make("operation_succeeded", f"{name} succeeded", rec.id, name, owner))
        return True

    @staticmethod
    def _custom_result(result: Any, masker: Callable[[str], str]) -> Any:
        """A custom operation's result as JSON data (what is not JSON-able becomes its ``str``),
        with every secret the deployment uses masked."""
        text = jsonable.dumps(result, ensure_ascii=False)
        masked = masker(text)
        try:
            return json.loads(masked)
        except ValueError:  # a mask cut through JSON syntax: the masked text itself
            return masked

    def _check_failed(self, inst: PlannedInstance, name: str, owner: str | None, message: str,
                      exc: BaseException) -> bool:
        ex = self.ex
        masker = ex.sink.masker
        self.emit(ex.sink.make("operation_failed", f"{name} failed: {message}", inst.id, name, owner, "error"))
        ex.failures.append(Failure(inst.id, name, owner, clipped(masker(message)), traceback_text(exc, masker)))
        return False

    def emit(self, event: Event) -> None:
        if self.ex.abandoned:
            raise Detached()
        self.ex.sink.emit(event)

    def _call_hook(self, caller: Any, ctx: OperationContext, op: Running, call: Call | None,
                   ticket: int | None = None) -> Any:
        """Run a plugin's hook (through the executor) without the engine lock, where the
        supervisor can time it out; first wait for the commit ``ticket`` asked for (the
        operation's "started" mark), also without the lock, so other workers' marks join
        the same transaction meanwhile."""
        ex = self.ex
        op.deadline = time.monotonic() + op.timeout
        running = ex.running
        running.add(op)
        ex.lock.release()
        try:
            if ticket is not None:
                try:
                    ex.sink.journal.sync(ticket)
                except StateError as exc:
                    raise Unrecorded(exc) from exc
            return ex.executor.call(caller, ctx, call, op.live)
        finally:
            ex.lock.acquire()
            running.discard(op)
            if op.detached:
                raise Detached()

    def retry_later(self, iid: str, step: Step, owner: str | None, attempt: int, why: str, delay: float,
                    name: str | None = None) -> None:
        """Say the operation (``name``: a custom one's) will be retried, and hand the instance
        back to the scheduler."""
        ex = self.ex
        ex.attempts[(iid, step.key)] = attempt + 1
        name = name or step.op
        ex.sink.emit(ex.sink.make(
            "operation_retrying", f"{name} will be retried in {delay:.1f}s (retry {attempt + 1} of "
            f"{ex.options.retries}): {why}", iid, name, owner, "warning"))
        raise Deferred(delay)

    def give_up(self, inst: PlannedInstance, rec: InstanceRecord, step: Step, owner: str | None,
                message: str, exc: BaseException | None) -> bool:
        ex = self.ex
        rec.ops[step.key] = "failed"
        masker = ex.sink.masker
        failure = Failure(inst.id, step.op, owner, clipped(masker(message)),
                          traceback_text(exc, masker) if exc is not None else "")
        rec.error = f"{step.op} ({owner or 'no plugin'}) failed: {failure.message}"
        ticket = self.write(rec, "failed", None, [ex.sink.make("operation_failed", f"{step.op} failed: {message}",
                                                               rec.id, step.op, owner, "error")],
                            forget=(step.key,) if ex.executor.remote else (), commit=True)
        assert ticket is not None
        ex.sink.journal.sync(ticket)
        ex.fail(failure)
        return False

    # -- state and events ---------------------------------------------------------

    def _flush(self, rec: InstanceRecord, pending: _Pending, state: str | None = None,
               version: int | None = None, *, commit: bool = False) -> int | None:
        """Stage the instance's state with whatever success is pending (``commit``: the ticket)."""
        runtime = rec.runtime_json if pending.runtime else None
        events, pending.events, pending.runtime = pending.events, [], False
        forget, pending.forget = pending.forget, []
        return self.write(rec, state or rec.state, runtime, events, version, forget, commit=commit)

    def write(self, rec: InstanceRecord, state: str, runtime_json: str | None, events: list[Event],
              version: int | None = None, forget: Iterable[str] = (), *, commit: bool) -> int | None:
        """Stage the instance's state, or (``commit``) ask for a commit: the ticket to sync on."""
        ex = self.ex
        if ex.abandoned:
            raise Detached()  # the execution is over: record nothing more
        rec.state = state
        masker = ex.sink.masker
        journal = ex.sink.journal
        with rec.lock:  # same order as persist(): a stale copy of the runtime properties never lands last
            runtime = rec.runtime_json if runtime_json is not None else None
            keys = masker.secret_keys(rec.runtime) if runtime is not None and masker else None
            write = InstanceWrite(rec.id, state, ops_json(rec.ops), runtime, rec.error, keys, version,
                                  tuple(forget))
            ticket = journal.request(write, events) if commit else journal.stage(write, events)
        if version is not None:
            rec.version = version
        return ticket


def persist(execution: Execution, rec: InstanceRecord) -> None:
    """Write an instance's runtime properties now (``ctx.instance.update()``), through the journal
    (with what it holds); under the record's lock, so a stale copy never lands last."""
    masker = execution.sink.masker
    with rec.lock:
        keys = masker.secret_keys(rec.runtime) if masker else None
        execution.sink.journal.commit(InstanceWrite(rec.id, None, None, rec.runtime_json, None, keys))


def save_runtime(ctx: OperationContext) -> None:
    """After a failed attempt: keep what the hook saved, so a retry or resume sees it."""
    try:
        if ctx.source is not None and ctx.target is not None:
            ctx.source.instance._merge()
            ctx.target.instance._merge()
        else:
            ctx.instance._merge()
    except NonRecoverableError:
        pass


def _merge_runtime(ctx: OperationContext) -> bool:
    """Merge the runtime properties the hook changed; True if the acting instance changed."""
    if ctx.source is not None and ctx.target is not None:
        changed = ctx.source.instance._merge(persist=False)
        ctx.target.instance._merge(persist=True)
        return changed
    return ctx.instance._merge(persist=False)


def backoff(options: Options, exc: BaseException | None, attempt: int) -> float:
    after = getattr(exc, "retry_after", None) if isinstance(exc, RecoverableError) else None
    if after is not None:
        return max(0.0, float(after))
    return min(options.retry_interval * (2 ** attempt), options.max_backoff)


def _message(exc: BaseException) -> str:
    name = type(exc).__name__
    text = exception_text(exc).strip()
    if isinstance(exc, (NonRecoverableError, RecoverableError)):
        return text or name
    return f"{name}: {text}" if text else name

