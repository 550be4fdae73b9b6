"""The dependency walk: which instance a worker takes next.

An instance is ready once every instance it waits for is done. Workers take ready
instances themselves under one lock, so a fast operation costs no thread switch (a
central dispatcher thread would cost two per instance). An instance whose operation
waits for a retry is *deferred*: it leaves its worker, which takes other work, and
becomes ready again when its time comes. So waiting never holds one of the
``concurrency`` slots (Terraform's ``dag/walk.go`` has no such notion; Cloudify's
retries do hold their task slot).

Workers are started as work appears, up to ``concurrency``: a chain needs one, and a
thread costs about 0.2 ms to start here (ten per phase were a tenth of a no-op chain's
time). The worker that releases more instances than there are idle workers asks for more.
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
                 before_wait: Callable[[], None] | None = None, concurrency: int = 1,
                 spawn: Callable[[int], int] | None = None) -> None:
        """``graph`` maps each instance to the instances it waits for; ``stop`` set: hand out no more;
        ``before_wait`` is called (without the scheduler's lock) by a worker about to wait for work;
        ``spawn(n)`` (needed by ``start``) starts up to ``n`` more workers and says how many it did (at most
        ``concurrency`` in all; see ``start``)."""
        self._before_wait = before_wait
        self._limit = max(1, concurrency)
        self._spawn = spawn
        self._workers = 0  # workers started and not yet told there is nothing left
        self._idle = 0  # workers waiting for work (woken or not: they look at ``_ready`` next)
        self._sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter(graph)
        self._sorter.prepare()
        self._ready: collections.deque[str] = collections.deque(self._sorter.get_ready())
        self._deferred: list[tuple[float, str]] = []  # (due, instance), a heap
        self._held = 0  # instances a worker is working on
        self._stop = stop
        self._cond = threading.Condition()

    def start(self) -> int:
        """Start the first workers, one per ready instance within ``concurrency`` (at least one,
        which finds an empty graph done); how many started."""
        with self._cond:
            n = self._workers = max(1, min(len(self._ready), self._limit))
        return self._start(n)

    def _start(self, n: int) -> int:
        """Start ``n`` workers (called without the lock); those the system refused are given back."""
        started = self._spawn(n)  # type: ignore[misc]
        if started < n:
            with self._cond:
                self._workers -= n - started
        return started

    def take(self) -> str | None:
        """The next instance to work on; None when there is none left (or a stop was requested)."""
        with self._cond:
            iid = self._next()
            grow = self._grow()
        if grow:
            self._start(grow)
        return iid

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
            iid = self._next()
            grow = self._grow()
        if grow:
            self._start(grow)
        return iid

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
            grow = 0
            if ok:
                self._sorter.done(iid)
                self._ready.extend(self._sorter.get_ready())
                self._cond.notify_all()
                grow = self._grow()
            self._wake_if_over()
        if grow:
            self._start(grow)

    def defer(self, iid: str, delay: float) -> None:
        """``iid`` waits ``delay`` seconds, handed back by a worker that takes nothing more."""
        with self._cond:
            self._held -= 1
            heapq.heappush(self._deferred, (time.monotonic() + delay, iid))
            self._cond.notify_all()

    def wake_all(self) -> None:
        with self._cond:
            self._cond.notify_all()

    def _grow(self) -> int:
        """Workers to start for ready instances no idle worker is there to take (counted as started).
        Every ready instance has had its notify; a notify finds no one only past the idle ones."""
        if self._spawn is None or self._stop.is_set():
            return 0
        n = min(len(self._ready) - self._idle, self._limit - self._workers)
        if n <= 0:
            return 0
        self._workers += n
        return n

    def _wake_if_over(self) -> None:
        if not self._held and not self._deferred and (not self._ready or self._stop.is_set()):
            self._cond.notify_all()  # nothing more will become ready: let idle workers exit

    def _next(self) -> str | None:
        before_wait = self._before_wait
        while True:
            if self._stop.is_set():
                self._workers -= 1
                self._cond.notify_all()  # idle workers may wait for what will now never come
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
                self._workers -= 1
                return None
            if before_wait is not None:  # once per call; then look again, things may have moved meanwhile
                before_wait, cond = None, self._cond
                cond.release()
                try:
                    self._before_wait()  # type: ignore[misc]
                finally:
                    cond.acquire()
                continue
            self._idle += 1
            try:
                self._cond.wait(timeout)
            finally:
                self._idle -= 1
