"""The CLI side of ``--executor celery``: send each hook call to the workers, wait for its outcome.

Each call is recorded in the state as a dispatch (a fresh token) before its message
goes to the broker; the worker that claims it records the outcome there. One reader
thread polls the outcomes of every call in flight with a single query and wakes the
runner's thread waiting on each, re-sends a call whose worker stopped renewing its
claim (killed: the operation runs again on another worker), and streams the workers'
log lines to the live display. A resumed execution first adopts what an earlier run's
dispatch left: a finished result is used as is, a running one is waited for.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.engine.context import OperationContext
from orchestrator.engine.events import EventSink
from orchestrator.engine.executor import Call, Withdrawn
from orchestrator.errors import ExecutorError
from orchestrator.plan import Plan
from orchestrator.remote import files
from orchestrator.remote.app import DEFAULT_QUEUE, TASK, display_broker, make_app
from orchestrator.remote.messages import VERSION, apply_diff, exception_of
from orchestrator.state import StateStore, is_url

POLL = 0.01  # seconds between looks at the outcomes of calls in flight
EVENTS_EVERY = 10  # polls between looks at the workers' log lines
UNCLAIMED_WARNING = 30.0  # seconds a call may wait for a worker before the user is told
UNCLAIMED_RESEND = 60.0  # ... and before its message is sent again (lost with a broker restart, or
# prefetched by a worker that died before claiming it); a duplicate is dropped by the claim


class Waiter:
    __slots__ = ("dispatched", "done", "outcome", "request", "resent", "token", "told")

    def __init__(self, token: str, request: dict[str, Any] | None) -> None:
        self.token = token
        self.request = request  # None: adopted from an earlier run (its message is not ours to resend)
        self.done = threading.Event()
        self.outcome: dict[str, Any] | None = None
        self.dispatched = time.monotonic()
        self.resent = self.dispatched
        self.told = False


class CeleryExecutor:
    """Hook calls run on ``orchestrator worker`` processes reached through ``broker``."""

    remote = True

    def __init__(self, broker: str, queue: str = DEFAULT_QUEUE, location: str | Path = "",
                 ping_timeout: float = 5.0) -> None:
        self.app = make_app(broker)
        self.broker = display_broker(broker)
        self.queue = queue
        self.location = str(Path(location).resolve()) if isinstance(location, Path) else str(location)
        self.workers = self._ping(ping_timeout)
        self._waiting: dict[str, Waiter] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._plans: dict[int, str] = {}  # id(plan) -> digest of its stored JSON
        self._files: str | None = None
        self._store: StateStore | None = None
        self._sink: EventSink | None = None
        self._base: dict[str, Any] = {}
        self._reader: threading.Thread | None = None
        self._last_event = 0
        self._stopping: Callable[[], bool] = lambda: False  # a stop was requested: queued calls are withdrawn

    def _ping(self, timeout: float) -> list[str]:
        """The workers that answer, before anything is written (none: a clear error, not a hang)."""
        try:
            replies = self.app.control.ping(timeout=timeout, limit=1) or []
        except Exception as exc:  # kombu's connection errors have many classes
            raise ExecutorError(f"cannot reach the broker at {self.broker}: {type(exc).__name__}: {exc}") from None
        names = sorted(name for reply in replies for name in reply)
        if not names:
            raise ExecutorError(f"no orchestrator worker answers on {self.broker} (waited {timeout:g}s): start one "
                                f"with 'orchestrator worker --broker {self.broker}' on a host with the plugins")
        return names

    def begin(self, store: StateStore, deployment: str, sink: EventSink, plans: list[Plan],
              secrets: Mapping[str, Any], used: set[str], retries: int,
              stopping: Callable[[], bool] | None = None) -> None:
        """Store what workers read (plans, the blueprint's files) and start the reader."""
        self._store, self._sink = store, sink
        if stopping is not None:
            self._stopping = stopping
        for plan in plans:
            if id(plan) in self._plans:
                continue
            data = plan.to_json().encode("utf-8")
            digest = "plan:" + hashlib.sha256(data).hexdigest()
            store.put_blob(deployment, digest, data)
            self._plans[id(plan)] = digest
        path = next((p.blueprint_path for p in plans if p.blueprint_path), "")
        if path and Path(path).parent.is_dir():
            state = None if is_url(self.location) else Path(self.location)
            packed = files.pack(Path(path).parent, state=state)
            if packed is None:
                sink.emit(sink.make("workflow_warning", f"the blueprint's directory holds over {files.LIMIT >> 20} MB "
                                    f"or {files.MAX_FILES} files: they are not shipped to workers (get_resource "
                                    f"works on this host only)", level="warning"))
            else:
                self._files = packed[0]
                store.put_blob(deployment, *packed)
        self._base = {"v": VERSION, "state": self.location, "deployment": deployment, "execution": sink.execution,
                      "max_retries": retries, "files": self._files,
                      "secrets": {name: secrets[name] for name in used if name in secrets},
                      "masks": list(sink.masker.sources)}
        self._last_event = max((e.id for e in store.events(deployment, execution=sink.execution)), default=0)
        self._reader = threading.Thread(target=self._read, name="outcomes", daemon=True)
        self._reader.start()

    # -- one call ---------------------------------------------------------------------

    def call(self, caller: Any, ctx: OperationContext, call: Call, live: Callable[[], bool]) -> Any:
        store, base = self._store, self._base
        assert store is not None, "begin() first"
        deployment = base["deployment"]
        adopt = call.resumed and call.attempt == 0
        while True:
            waiter = self._dispatch(ctx, call, adopt)
            try:
                while not waiter.done.wait(0.1):
                    if not live() or self._closed.is_set():
                        return None  # timed out or abandoned: the runner discards this call
                    if self._stopping() and waiter.request is not None and store.withdraw_operation(
                            deployment, call.instance, call.key, waiter.token):
                        raise Withdrawn()  # a stop request: a call still queued never runs
            finally:
                with self._lock:
                    self._waiting.pop(waiter.token, None)
            if waiter.outcome is not None:
                break
            adopt = False  # an adopted dispatch whose worker died: this run sends the call itself
        if call.transient:
            store.forget_operation(deployment, call.instance, call.key)
        outcome = waiter.outcome or {}
        _apply_runtime(ctx, outcome.get("runtime") or {})
        if outcome.get("ok"):
            return outcome.get("result")
        raise exception_of(outcome)

    def _dispatch(self, ctx: OperationContext, call: Call, adopt: bool) -> Waiter:
        """Record the call as a dispatch and send it (or adopt what an earlier run left)."""
        store = self._store
        assert store is not None
        token = uuid.uuid4().hex
        found = store.dispatch_operation(self._base["deployment"], call.instance, call.key, token, adopt=adopt)
        if found is not None:  # an earlier run's worker finished it, or still runs it: no new run
            waiter = Waiter(found.token, None)
        else:
            waiter = Waiter(token, self._request(ctx, call, token))
        with self._lock:
            self._waiting[waiter.token] = waiter
        if waiter.request is not None:
            self._send(waiter.request)
        self._wake.set()
        return waiter

    def _request(self, ctx: OperationContext, call: Call, token: str) -> dict[str, Any]:
        if ctx.source is not None and ctx.target is not None:
            acting = [ctx.source.instance, ctx.target.instance]
        else:
            acting = [ctx.instance]
        return {**self._base, "token": token, "instance": call.instance, "op": call.op, "key": call.key,
                "relationship": call.relationship, "owner": call.owner, "attempt": call.attempt,
                "plan": self._plans[id(call.plan)],
                "changes": {k: list(v) for k, v in call.changes.items()} if call.changes else None,
                "custom": [call.custom[0], dict(call.custom[1])] if call.custom else None,
                "runtime": {i.id: i.runtime_properties for i in acting}}

    def _send(self, request: dict[str, Any]) -> None:
        try:
            # A producer from the app's pool. The arguments' repr Celery puts in each message's
            # headers is ours: its own is a costly walk of the request, secrets included.
            self.app.send_task(TASK, args=[request], queue=self.queue, kwargsrepr="{}",
                               argsrepr=f"[{request['deployment']} {request['instance']} {request['key']}]")
        except Exception as exc:
            raise ExecutorError(f"cannot send to the broker at {self.broker}: {type(exc).__name__}: {exc}") from None

    # -- the reader -----------------------------------------------------------------------

    def _read(self) -> None:
        store, deployment = self._store, self._base["deployment"]
        assert store is not None
        polls = 0
        while not self._closed.is_set():
            with self._lock:
                waiting = dict(self._waiting)
            if not waiting:
                self._wake.wait(0.5)
                self._wake.clear()
            else:
                try:
                    self._settle(store, deployment, waiting)
                except Exception:  # a state hiccup: look again next time
                    pass
                time.sleep(POLL)
            polls += 1
            if polls % EVENTS_EVERY == 0 or not waiting:
                try:
                    self._relay_logs(store, deployment)
                except Exception:
                    pass

    def _settle(self, store: StateStore, deployment: str, waiting: dict[str, Waiter]) -> None:
        found = store.outcomes(deployment, waiting)
        now, wall = time.monotonic(), time.time()
        for token, waiter in waiting.items():
            row = found.get(token)
            if row is not None and row.outcome is not None:
                self._relay_logs(store, deployment)  # its log lines come before its result
                waiter.outcome = json.loads(row.outcome)
                waiter.done.set()
            elif row is not None and not row.live_claim(wall):
                # its worker stopped renewing the claim (killed): send it again, once per lapse
                if waiter.request is not None and now - waiter.resent > 5.0:
                    waiter.resent = now
                    self._say(f"worker {row.worker} stopped running {row.instance} {row.key}; sent again",
                              row.instance)
                    self._send(waiter.request)
                elif waiter.request is None:  # adopted from a dead run: the waiting call dispatches it anew
                    waiter.outcome = None
                    waiter.done.set()
            elif row is None:
                if not waiter.told and now - waiter.dispatched > UNCLAIMED_WARNING:
                    waiter.told = True
                    self._say(f"no worker has taken {token[:8]} for {UNCLAIMED_WARNING:g}s (queue '{self.queue}'); "
                              f"is one running with the plugins and this state?", None)
                if waiter.request is not None and now - waiter.resent > UNCLAIMED_RESEND:
                    waiter.resent = now
                    self._send(waiter.request)

    def _relay_logs(self, store: StateStore, deployment: str) -> None:
        sink = self._sink
        assert sink is not None
        events = store.events(deployment, after=self._last_event, execution=sink.execution)
        for event in events:
            self._last_event = max(self._last_event, event.id)
            if event.type == "log":
                sink.publish(event)

    def _say(self, text: str, instance: str | None) -> None:
        sink = self._sink
        if sink is not None:
            try:
                sink.emit(sink.make("workflow_warning", text, instance, level="warning"))
            except Exception:
                pass

    def close(self) -> None:
        self._closed.set()
        self._wake.set()
        if self._reader is not None:
            self._reader.join(timeout=2)


def _apply_runtime(ctx: OperationContext, diffs: Mapping[str, Any]) -> None:
    """What the hook changed on the worker, applied to this ``ctx`` as if the hook had run here."""
    if not diffs:
        return
    if ctx.source is not None and ctx.target is not None:
        acting = [ctx.source.instance, ctx.target.instance]
    else:
        acting = [ctx.instance]
    for inst in acting:
        diff = diffs.get(inst.id)
        if diff:
            apply_diff(inst.runtime_properties, diff)
