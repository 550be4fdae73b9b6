"""Running a workflow: worker threads walk each phase's graph; the calling thread supervises.

Instances run as soon as everything they depend on is done (not in lock-step waves),
at most ``concurrency`` at a time, each running its own operations in order
(``steps.StepRunner``). The calling thread supervises: it handles stop requests (the
first lets running hooks finish, the second abandons them), operation timeouts (a hung
hook's instance is taken from its worker, for a retry or a failure, and a fresh worker
takes the stuck one's place; its late results are discarded) and a lost lock. Hooks run
in daemon threads, so a hung one never keeps the process alive once the run is over.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from orchestrator.engine.context import InstanceRecord
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.engine.events import Event, EventSink
from orchestrator.engine.executor import Executor
from orchestrator.engine.factory import ContextFactory
from orchestrator.engine.interrupt import Interrupt
from orchestrator.engine.options import DEFAULT_OPERATION_TIMEOUT, Options
from orchestrator.engine.results import ExecutionResult, Failure
from orchestrator.engine.scheduler import Scheduler
from orchestrator.engine.steps import (
    Deferred,
    Detached,
    Execution,
    Running,
    StepRunner,
    backoff,
    persist,
)
from orchestrator.engine.workflows import Phase, Workflow
from orchestrator.errors import StateError
from orchestrator.plan import Plan
from orchestrator.secrets import secret_strings
from orchestrator.state import StateStore

__all__ = ["DEFAULT_OPERATION_TIMEOUT", "ExecutionResult", "Failure", "Options", "Runner"]

POLL = 0.1  # seconds between the supervisor's looks at signals, timeouts and the lock


class Runner:
    """Runs one workflow of one deployment; build a new one per execution."""

    def __init__(self, *, store: StateStore, deployment: str, dispatcher: Dispatcher, sink: EventSink,
                 options: Options, secrets: Mapping[str, Any] | None = None, plans: list[Plan] = (),
                 records: dict[str, InstanceRecord] | None = None, interrupt: Interrupt | None = None,
                 executor: Executor | None = None) -> None:
        self.secrets = secrets or {}
        self.interrupt = interrupt
        if records is None:
            records = self._load_records(store, deployment, plans, sink)
        self.ex = Execution(store, deployment, sink, dispatcher, options, records)
        if executor is not None:
            self.ex.executor = executor
        self.cancelled: str | None = None  # why a stop was requested
        self.abandoned: list[str] = []
        self.notes: list[str] = []
        self._lock_lost: str | None = None
        self._state_error: StateError | None = None
        self._count_lock = threading.Lock()
        self._active = 0  # worker threads not detached
        self._idle = threading.Event()
        self._scheduler: Scheduler | None = None
        self._steps: StepRunner | None = None
        dispatcher.pm.masker = sink.masker  # hook tracing (ORCHESTRATOR_TRACE_HOOKS) masks like events do

    @property
    def records(self) -> dict[str, InstanceRecord]:
        return self.ex.records

    @staticmethod
    def _load_records(store: StateStore, deployment: str, plans: list[Plan],
                      sink: EventSink) -> dict[str, InstanceRecord]:
        """The instances as stored; values a plugin copied from a secret are masked from here on,
        even when this execution does not have the secret itself."""
        rows = store.instances(deployment)
        records = {}
        for plan in plans:
            for iid, inst in plan.instances.items():
                if iid in records:
                    continue
                row = rows.get(iid)
                if row is None:
                    records[iid] = InstanceRecord(iid, inst.node, "uninitialized", {}, {})
                    continue
                records[iid] = InstanceRecord(iid, inst.node, row.state, row.ops, row.runtime, row.error,
                                              row.plan_version)
                if row.secret_keys:
                    sink.masker.add(s for k in row.secret_keys for s in secret_strings(row.runtime.get(k)))
        return records

    def contexts(self, plan: Plan) -> ContextFactory:
        """The context factory of ``plan``: how this execution builds each operation's ``ctx``."""
        ex = self.ex
        sink = ex.sink

        def emit(level: str, text: str, instance: str, op: str, owner: str | None) -> None:
            # A log line is no mark: it waits for the next write or the supervisor's flush (a
            # transaction per line would make a chatty plugin pay for every one).
            sink.journal.stage(None, (sink.make("log", text, instance, op, owner, level),))

        return ContextFactory(plan, ex.records, self.secrets, ex.deployment, lambda rec: persist(ex, rec), emit,
                              ex.options.retries)

    def lock_lost(self, why: str) -> None:
        """Called by the lease keeper (another thread): the supervisor stops the run."""
        self._lock_lost = why

    # -- a workflow -------------------------------------------------------------------

    def run(self, workflow: Workflow) -> ExecutionResult:
        ex = self.ex
        started = time.perf_counter()
        if workflow.prepare is not None:
            workflow.prepare(ex.records)
        count = len({i for phase in workflow.phases for i in phase.instances()})
        self._emit(ex.sink.make("workflow_started", f"{workflow.name} of {count} node instances started"))
        self._stop_requested()  # asked before anything started: nothing will
        for phase in workflow.phases:
            if ex.stop.is_set():
                break
            self._run_phase(phase)
            if ex.failures and not ex.options.ignore_failures:
                break
        status = self._status()
        elapsed = time.perf_counter() - started
        level = "info" if status == "succeeded" else "error"
        self._emit(ex.sink.make(f"workflow_{status}", f"{workflow.name} {status} in {elapsed:.2f}s", level=level))
        if self._state_error is not None:
            self.notes.insert(0, str(self._state_error))
        self.notes.extend(ex.sink.dropped)
        left = ([f for f in ex.failures if f.instance in ex.records and ex.records[f.instance].state != "deleted"]
                if ex.options.ignore_failures else [])
        return ExecutionResult(workflow.name, ex.deployment, ex.sink.execution, status, ex.failures, elapsed,
                               ex.operations, self.abandoned, self.notes, left, ex.results)

    def _run_phase(self, phase: Phase) -> None:
        graph = phase.graph()
        self._scheduler = Scheduler(graph, self.ex.stop, before_wait=self._commit_staged,
                                    concurrency=self.ex.options.concurrency, spawn=self._spawn_workers)
        self._steps = StepRunner(self.ex, phase, self.contexts(phase.plan))
        self._idle.clear()
        self._active = 0
        if not self._scheduler.start():
            raise RuntimeError("cannot start a worker thread")
        self._supervise()
        self._commit_staged()

    def _status(self) -> str:
        if self.cancelled is not None:
            return "cancelled"
        if self._state_error is not None or self._lock_lost is not None:
            return "failed"
        if self.ex.failures and not self.ex.options.ignore_failures:
            return "failed"
        return "succeeded"

    def _emit(self, event: Event) -> None:
        """An event from the supervising thread; a state that can take no more writes is said once."""
        try:
            self.ex.sink.emit(event)
        except StateError as exc:
            self._state_failed(exc)

    # -- supervision (the calling thread) -------------------------------------------

    def _supervise(self) -> None:
        """Wait for the workers, acting on stop requests, timeouts and a lost lock meanwhile."""
        while not self._idle.wait(POLL):
            self._commit_staged()  # what no later write carried (every worker is in a long hook)
            if self._stop_requested():
                return
            if self.ex.running:
                self._check_timeouts()
            if self._lock_lost is not None and not self.notes:
                self.notes.append(f"this execution stopped: {self._lock_lost}")
                self.ex.stop.set()
                self._wake()

    def _stop_requested(self) -> bool:
        """Act on new stop requests: the first cancels, the second abandons (then True)."""
        count = self.interrupt.count if self.interrupt is not None else 0
        if count and self.cancelled is None:
            self._cancel(self.interrupt.reason if self.interrupt is not None else "")
        if count >= 2 and not self.ex.abandoned:
            self._abandon()
            return True
        return False

    def _wake(self) -> None:
        if self._scheduler is not None:
            self._scheduler.wake_all()

    def _cancel(self, reason: str) -> None:
        self.cancelled = reason or "stop requested"
        self.ex.stop.set()
        self._wake()
        n = len(self.ex.running)
        waiting = (f"waiting for {n} running operation{'s' if n != 1 else ''} (Ctrl+C again to abandon them)"
                   if n else "nothing is running")
        self._emit(self.ex.sink.make("workflow_cancelling", f"{self.cancelled}: no new operations will start; "
                                     f"{waiting}", level="warning"))

    def _abandon(self) -> None:
        ex = self.ex
        with ex.lock:
            ex.abandoned = True
            running = list(ex.running)
            for op in running:
                op.detached = True
            self.abandoned = [str(op) for op in running]
        ex.stop.set()
        self._wake()
        if running:
            self._emit(ex.sink.make(
                "workflow_cancelling", f"abandoned {len(running)} running operation{'s' if len(running) != 1 else ''} "
                f"({'; '.join(self.abandoned)}): they stay recorded as in progress and run again on resume",
                level="warning"))

    def _check_timeouts(self) -> None:
        ex = self.ex
        now = time.monotonic()
        expired = [op for op in list(ex.running) if op.deadline <= now]
        if not expired:
            return
        with ex.lock:
            for op in expired:
                if op not in ex.running:
                    continue  # it finished meanwhile
                ex.running.discard(op)
                # Its worker is stuck in the hook: a new one takes its place (and its count in
                # _active); if the stuck one ever returns, it ends without recording anything.
                op.detached = True
                try:
                    self._timed_out(op)
                except StateError as exc:
                    self._state_failed(exc)
                    assert self._scheduler is not None
                    self._scheduler.release(op.instance, False)
                self._spawn()

    def _timed_out(self, op: Running) -> None:
        """A hung operation's instance is retried per policy, or fails."""
        ex, scheduler, steps = self.ex, self._scheduler, self._steps
        assert scheduler is not None and steps is not None
        message = f"timed out after {op.timeout:g}s"
        if op.attempt < ex.options.retries and not ex.stop.is_set():
            delay = backoff(ex.options, None, op.attempt)
            try:
                steps.retry_later(op.instance, op.step, op.owner, op.attempt, message, delay)
            except Deferred:
                scheduler.defer(op.instance, delay)
            return
        if op.attempt:
            message += f" (gave up after {op.attempt} retries)"
        steps.give_up(steps.plan.instances[op.instance], ex.records[op.instance], op.step, op.owner, message, None)
        scheduler.release(op.instance, ex.options.ignore_failures)

    # -- workers --------------------------------------------------------------------

    def _spawn_workers(self, n: int) -> int:
        """Start up to ``n`` more workers (the scheduler asks, as work appears): how many started.
        A system that refuses more threads leaves the run with the workers it has."""
        for started in range(n):
            with self._count_lock:
                self._active += 1
            try:
                self._spawn()
            except RuntimeError:  # "can't start new thread"
                with self._count_lock:
                    self._active -= 1
                return started
        return n

    def _spawn(self) -> None:
        """Start a worker that takes the place (and the count) of one already counted."""
        threading.Thread(target=self._worker, name="op", daemon=True).start()

    def _worker(self) -> None:
        """Take ready instances until none is left (or a failure stops new work)."""
        scheduler, steps, ex = self._scheduler, self._steps, self.ex
        assert scheduler is not None and steps is not None
        ignore, instances = ex.options.ignore_failures, steps.plan.instances
        detached = False
        try:
            iid = scheduler.take()
            while iid is not None:
                delay = None
                with ex.lock:
                    try:
                        ok = self._guarded(steps, instances[iid])
                    except Deferred as deferred:
                        delay = deferred.delay
                if delay is not None:  # it waits for a retry: this worker takes other work meanwhile
                    iid = scheduler.defer_and_take(iid, delay)
                else:
                    iid = scheduler.finish_and_take(iid, ok or ignore)
        except Detached:
            detached = True  # the supervisor has this instance now; this thread just ends
        finally:
            if not detached:
                try:
                    self._commit_staged()  # this worker's last success, when no later write carried it
                finally:
                    with self._count_lock:
                        self._active -= 1
                        if self._active <= 0:
                            self._idle.set()

    def _guarded(self, steps: StepRunner, inst: Any) -> bool:
        try:
            return steps.run(inst)
        except (Detached, Deferred):
            raise
        except StateError as exc:
            self._state_failed(exc)
            return False
        except BaseException as exc:  # an engine bug must not hang the scheduler
            masker = self.ex.sink.masker
            self.ex.fail(Failure(inst.id, "engine", None, masker(f"internal error: {type(exc).__name__}: {exc}"),
                                 masker(traceback.format_exc())))
            return False

    def _commit_staged(self) -> None:
        try:
            self.ex.sink.journal.flush()
        except StateError as exc:
            self._state_failed(exc)

    def _state_failed(self, exc: StateError) -> None:
        """The state took no more writes (disk full, lock lost): stop, and say it once."""
        with self._count_lock:
            if self._state_error is None:
                self._state_error = exc
        self.ex.stop.set()
        self._wake()
