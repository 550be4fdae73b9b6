"""The dependency walk: which instance a worker takes next.

An instance is ready once every instance it waits for is done. Workers take ready
instances themselves under one lock, so a fast operation costs no thread switch (a
central dispatcher thread would cost two per instance). An instance whose operation
waits for a retry is *deferred*: it leaves its worker, which takes other work, and
becomes ready again when its time comes. So waiting never holds one of the
``concurrency`` slots (Terraform's ``dag/walk.go`` has no such notion; Cloudify's
retries do hold their task slot).
"""

from __future__ import annotations

import collections
import graphlib
import heapq
import threading
import time
from collections.abc import Callable


class Scheduler:
    def __init__(self, graph: dict[str, set[str]], stop: threading.Event,
                 before_wait: Callable[[], None] | None = None) -> None:
        """``graph`` maps each instance to the instances it waits for; ``stop`` set: hand out no more;
        ``before_wait`` is called (without the scheduler's lock) by a worker about to wait for work."""
        self._before_wait = before_wait
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(graph)
        self._sorter.prepare()
        self._ready: collections.deque[str] = collections.deque(self._sorter.get_ready())
        self._deferred: list[tuple[float, str]] = []  # (due, instance), a heap
        self._held = 0  # instances a worker is working on
        self._stop = stop
        self._cond = threading.Condition()

    def take(self) -> str | None:
        """The next instance to work on; None when there is none left (or a stop was requested)."""
        with self._cond:
            return self._next()

    def finish_and_take(self, iid: str, ok: bool) -> str | None:
        """``iid`` is done (``ok``: its dependents may go); then the next instance, as ``take``."""
        with self._cond:
            self._held -= 1
            if ok:
                self._sorter.done(iid)
                released = self._sorter.get_ready()
                if released:
                    self._ready.extend(released)
                    if len(released) > 1:  # this worker takes one itself
                        self._cond.notify(len(released) - 1)
            self._wake_if_over()
            return self._next()

    def defer_and_take(self, iid: str, delay: float) -> str | None:
        """``iid`` waits ``delay`` seconds (a retry) without its worker; then the next instance."""
        with self._cond:
            self._held -= 1
            heapq.heappush(self._deferred, (time.monotonic() + delay, iid))
            self._cond.notify()  # an idle worker now has a deadline to wait for
            return self._next()

    def release(self, iid: str, ok: bool) -> None:
        """``iid`` is done, by a worker that takes nothing more (it stops, or another took over)."""
        with self._cond:
            self._held -= 1
            if ok:
                self._sorter.done(iid)
                self._ready.extend(self._sorter.get_ready())
                self._cond.notify_all()
            self._wake_if_over()

    def defer(self, iid: str, delay: float) -> None:
        """``iid`` waits ``delay`` seconds, handed back by a worker that takes nothing more."""
        with self._cond:
            self._held -= 1
            heapq.heappush(self._deferred, (time.monotonic() + delay, iid))
            self._cond.notify_all()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _wake_if_over(self) -> None:
        if not self._held and not self._deferred and (not self._ready or self._stop.is_set()):
            self._cond.notify_all()  # nothing more will become ready: let idle workers exit

    def _next(self) -> str | None:
        before_wait = self._before_wait
        while True:
            if self._stop.is_set():
                return None
            if self._ready:
                self._held += 1
                return self._ready.popleft()
            timeout = None
            if self._deferred:
                due = self._deferred[0][0] - time.monotonic()
                if due <= 0:
                    self._held += 1
                    return heapq.heappop(self._deferred)[1]
                timeout = due
            elif not self._held:
                return None
            if before_wait is not None:  # once per call; then look again, things may have moved meanwhile
                before_wait, cond = None, self._cond
                cond.release()
                try:
                    self._before_wait()  # type: ignore[misc]
                finally:
                    cond.acquire()
                continue
            self._cond.wait(timeout)
