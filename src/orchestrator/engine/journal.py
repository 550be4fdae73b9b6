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

from orchestrator.state import Event, InstanceWrite, StateStore


class Journal:
    """The staged writes of one execution; thread-safe. A commit holds the journal while it
    writes, so writes land in the order they were staged."""

    def __init__(self, store: StateStore, deployment: str, execution: int | None,
                 publish: Callable[[Event], None]) -> None:
        self.store = store
        self.deployment = deployment
        self.execution = execution
        self._publish = publish
        self._lock = threading.Lock()
        self._writes: dict[str, InstanceWrite] = {}
        self._events: list[Event] = []

    def stage(self, write: InstanceWrite | None, events: Iterable[Event] = ()) -> None:
        """Keep ``write`` and ``events`` for the next commit."""
        with self._lock:
            self._add(write, events)

    def commit(self, write: InstanceWrite | None = None, events: Iterable[Event] = ()) -> None:
        """Write ``write``, ``events`` and everything staged, in one transaction, now. If it
        fails (``StateError``), what was staged is dropped with it: the execution stops, and
        the operations whose success it held run again on resume."""
        with self._lock:
            self._add(write, events)
            self._write()

    def flush(self) -> None:
        """Commit what is staged, if anything."""
        if self._writes or self._events:
            with self._lock:
                self._write()

    def pending(self) -> bool:
        return bool(self._writes or self._events)

    def _add(self, write: InstanceWrite | None, events: Iterable[Event]) -> None:
        if write is not None:
            staged = self._writes.get(write.instance)
            self._writes[write.instance] = write if staged is None else staged.merged(write)
        self._events.extend(events)

    def _write(self) -> None:
        writes, events = list(self._writes.values()), self._events
        if not writes and not events:
            return
        self._writes, self._events = {}, []
        row = event_row
        if writes:
            self.store.write(self.deployment, writes, [row(e) for e in events], self.execution)
        else:  # events alone are not fenced: an execution that lost its lock still says how it ended
            self.store.add_events([row(e) for e in events])
        for event in events:
            self._publish(event)


def event_row(event: Event) -> tuple:
    """An event as the row ``StateStore.write`` takes."""
    return (event.ts, event.deployment, event.execution, event.instance, event.operation, event.plugin,
            event.type, event.level, event.message)
