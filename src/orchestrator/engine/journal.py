"""What an execution writes to the state, gathered so that one transaction carries many writes.

A hook must not run before the mark saying it started is in the state (after a crash,
that mark is how a resumed run knows the operation may have had side effects), so that
write is *committed*: it goes at once, in one transaction with everything *staged*
before it. What only follows an operation (its success, an instance's last state) is
staged: it rides with the next commit, whichever instance or thread that is for. Between
the two only bookkeeping runs, so a crash there just means an (idempotent) operation
runs again on resume, as a crash just after its hook returned would. An instance
released to its dependents is safe too: a dependent's first "started" mark commits in
the same transaction as (or after) everything its dependency staged. Staged writes wait
only while other writes are being prepared: a worker with nothing to start commits
them, and the supervisor commits what is left every poll.

Events go through here as well, in the order they were made, and listeners hear of them
once they are stored. Writes of one instance merge (``InstanceWrite.merged``): a success
and the next "started" mark of the same instance are one UPDATE.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable

from orchestrator.errors import LockLostError
from orchestrator.state import Event, InstanceWrite, StateStore

EVENTS_BATCH = 256
"""Events staged before a batch takes them along. An instance write need not carry its
events: stored with it, each batch would touch the events table (and its index) for
two or three rows; gathered, they cost a few microseconds each. They land at the latest
with the next flush (the supervisor's, every ``runner.POLL``), before the execution ends."""


class Journal:
    """The staged writes of one execution; thread-safe.

    A commit is a *group* commit: whoever needs one while no write is under way writes
    everything staged so far (taking the requests of other threads with it); a thread
    whose request a write in progress did not take waits for the next one, which the
    first of the waiting threads makes. Workers wait without the engine's lock (see
    ``StepRunner._call_hook``), so while one batch goes to SQLite (which lets go of the
    GIL), the others prepare the next: one transaction carries the operations of several
    workers. Batches are written one at a time, in order, so writes land in the order they
    were staged, and listeners hear of events in that order.
    """

    def __init__(self, store: StateStore, deployment: str, execution: int | None,
                 publish: Callable[..., None]) -> None:
        self.store = store
        self.deployment = deployment
        self.execution = execution
        self._publish = publish
        self._lock = threading.Lock()
        # The threads waiting for batch n wait on turn n % 2: the end of a batch wakes its own
        # threads, and one of the next batch's (to write it), not all of them.
        self._turns = (threading.Condition(self._lock), threading.Condition(self._lock))
        self._waiting = [0, 0]  # threads waiting on each turn (a notify with none costs a lock round)
        self._batch = 0  # the number of the batch being written, or of the last one
        self._writes: dict[str, InstanceWrite] = {}
        self._events: list[Event] = []
        self._requested = 0  # the last commit request's ticket
        self._taken = 0  # the last ticket a batch took
        self._durable = 0  # every ticket up to this one is in the state (unless it failed)
        self._writing = False
        self._failed: list[tuple[int, int, BaseException]] = []  # batches that did not land: first, last ticket
        self._lost: LockLostError | None = None  # the lock was taken over: only events still go in
        self._events_due = False  # a flush asked for: the next batch takes the events too

    def stage(self, write: InstanceWrite | None, events: Iterable[Event] = ()) -> None:
        """Keep ``write`` and ``events`` for the next commit."""
        with self._lock:
            self._add(write, events)

    def request(self, write: InstanceWrite | None = None, events: Iterable[Event] = ()) -> int:
        """Stage ``write`` and ``events`` and ask for a commit: the ticket to ``sync`` on."""
        with self._lock:
            self._add(write, events)
            self._requested += 1
            return self._requested

    def commit(self, write: InstanceWrite | None = None, events: Iterable[Event] = ()) -> None:
        """Write ``write``, ``events`` and everything staged before them, now."""
        self.sync(self.request(write, events))

    def flush(self) -> None:
        """Commit what is staged, events included, if anything."""
        if self._writes or self._events:
            with self._lock:
                self._events_due = True
            self.commit()

    def sync(self, ticket: int) -> None:
        """Return once the commit ``ticket`` asked for is in the state; raise what stopped it
        (``StateError``) if it is not. A failed batch is dropped with its error: the execution
        stops, and the operations whose success it held run again on resume."""
        with self._lock:
            while True:
                for first, last, error in self._failed:
                    if first <= ticket <= last:
                        raise error
                if ticket <= self._durable:
                    return
                if ticket <= self._taken:  # in the batch being written
                    self._wait(self._batch % 2)
                elif self._writing:  # in the next one
                    self._wait((self._batch + 1) % 2)
                else:
                    self._write_batch()

    def _wait(self, turn: int) -> None:
        self._waiting[turn] += 1
        try:
            self._turns[turn].wait()
        finally:
            self._waiting[turn] -= 1

    def _add(self, write: InstanceWrite | None, events: Iterable[Event]) -> None:
        if write is not None:
            if self._lost is not None:  # refused at once (with its events), not left to sink a batch
                raise self._lost
            staged = self._writes.get(write.instance)
            self._writes[write.instance] = write if staged is None else staged.merged(write)
        self._events.extend(events)

    def _write_batch(self) -> None:
        """Write everything staged (called holding the lock; lets go of it while writing)."""
        writes, events = list(self._writes.values()), self._events
        if not writes or self._events_due or len(events) >= EVENTS_BATCH:
            self._events, self._events_due = [], False
        else:  # events wait for a batch of their own size (or the next flush): see EVENTS_BATCH
            events = []
        self._writes = {}
        first, last = self._taken + 1, self._requested
        self._taken = last
        self._writing = True
        self._batch += 1
        error: BaseException | None = None
        self._lock.release()
        try:
            rows = [event_row(e) for e in events]
            if writes:
                self.store.write(self.deployment, writes, rows, self.execution)
            elif rows:  # events alone are not fenced: an execution that lost its lock still says how it ended
                self.store.add_events(rows)
        except BaseException as exc:  # handed to every thread whose commit this batch carried
            error = exc
        finally:
            self._lock.acquire()
            self._writing = False
            mine, next_turn = self._batch % 2, (self._batch + 1) % 2
            if self._waiting[mine]:
                self._turns[mine].notify_all()
            if self._waiting[next_turn]:
                self._turns[next_turn].notify()  # the next batch's writer
        if error is not None:
            self._failed.append((first, last, error))
            if isinstance(error, LockLostError):
                self._lost = error
            return
        self._durable = last
        if events:
            self._publish(*events)


def event_row(event: Event) -> tuple:
    """An event as the row ``StateStore.write`` takes."""
    return (event.ts, event.deployment, event.execution, event.instance, event.operation, event.plugin,
            event.type, event.level, event.message)
