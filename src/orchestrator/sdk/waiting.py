"""Waiting for a resource without holding a worker: poll once, else ask to be retried.

``wait_until(ctx, probe, what)`` calls ``probe()`` once. When it is not ready yet the
operation raises ``OperationRetry`` with a short ``retry_after`` and ends; the engine
runs it again later (and can run other operations meanwhile), the hook finds where it
was from its runtime properties and polls again. Nothing sleeps inside a hook.

The first retry comes after ``first`` seconds and the pauses double up to
``max_interval``; the wait as a whole is bounded by ``timeout`` seconds, counted from
the first poll of this execution (kept in the runtime property ``_waiting``). A retry
counts against the operation's retries (``--retries``), so the schedule also spreads
the retries the operation has left over the time left: with few retries the pauses
grow faster (say 0.1, 0.7, 5, 40, 250 s), so that a wait ends by ``timeout`` and never
because the retries ran out first. A probe that knows when to look again returns
``NotReady(after=seconds)`` (a container that must stay up one more second: no sooner)
or ``NotReady(by=seconds)`` (a stop that turns into a kill then: no later).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

from orchestrator.errors import NonRecoverableError, OperationRetry

T = TypeVar("T")

WAITING = "_waiting"
"""The runtime property holding the wait in progress (removed once it is over)."""

FIRST = 0.1
MAX_INTERVAL = 5.0
TIMEOUT = 300.0


class NotReady:
    """A probe's "not yet": falsy. ``after``: nothing will change for that many seconds, so the
    next look is no sooner (the schedule may make it later, to last with the retries left).
    ``by``: the probe acts in that many seconds (kills what did not stop, say), so the next
    look is no later; the schedule would otherwise put it off when few retries are left."""

    __slots__ = ("after", "by", "why")

    def __init__(self, after: float | None = None, why: str = "", by: float | None = None) -> None:
        self.after = after
        self.why = why
        self.by = by

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NotReady(after={self.after!r}, by={self.by!r}, why={self.why!r})"


def wait_until(ctx: Any, probe: Callable[[], T], what: str, *, timeout: float = TIMEOUT, first: float = FIRST,
               max_interval: float = MAX_INTERVAL, clock: Callable[[], float] = time.time) -> T:
    """``probe()``'s value once it is truthy; else raise ``OperationRetry`` (see the module).

    ``what`` names what is awaited ("instance i-123 to be running"): it is the retry's
    message and, once ``timeout`` has passed, the ``NonRecoverableError``'s.
    """
    runtime = _runtime(ctx)
    key = f"{ctx.operation.name}: {what}"
    state = runtime.get(WAITING)
    if not isinstance(state, dict) or state.get("for") != key or ctx.operation.retry_number == 0:
        state = None  # a new wait (the first attempt of an execution starts afresh)
    value = probe()
    if value:
        runtime.pop(WAITING, None)
        return value
    now = clock()
    since = float(state["since"]) if state else now
    prev = float(state["interval"]) if state else None
    elapsed = now - since
    left = timeout - elapsed
    retries_left = ctx.operation.max_retries - ctx.operation.retry_number
    if left <= 0:
        runtime.pop(WAITING, None)
        raise NonRecoverableError(f"gave up waiting for {what} after {elapsed:.1f}s (timeout {timeout:g}s)")
    if retries_left <= 0:
        runtime.pop(WAITING, None)
        raise NonRecoverableError(f"gave up waiting for {what} after {elapsed:.1f}s: the operation has no retries "
                                  f"left (it had {ctx.operation.max_retries}; raise --retries)")
    interval = next_interval(prev, retries_left, left, first, max_interval)
    if isinstance(value, NotReady):
        if value.after is not None:  # not sooner: nothing changes before
            interval = max(interval, value.after)
        if value.by is not None:  # not later: the probe acts then
            interval = min(interval, max(value.by, 0.01))
    interval = min(interval, left)
    runtime[WAITING] = {"for": key, "since": since, "interval": interval}
    why = f"; {value.why}" if isinstance(value, NotReady) and value.why else ""
    raise OperationRetry(f"waiting for {what} ({elapsed:.1f}s so far{why})", retry_after=interval)


def next_interval(prev: float | None, retries: int, left: float, first: float, cap: float) -> float:
    """The pause before the next poll, given the last pause, the retries and seconds left.

    Natural schedule: ``first``, then doubling up to ``cap``. If ``retries`` such pauses
    cannot reach ``left`` seconds, the cap is raised until they can, and if even plain
    doubling cannot, the growth factor is.
    """
    start = first if prev is None else prev
    skip = 0 if prev is None else 1  # the next pause is start * f**skip

    def total(factor: float, ceiling: float) -> float:
        return sum(min(start * factor ** (skip + j), ceiling) for j in range(retries))

    def pause(factor: float, ceiling: float) -> float:
        return min(start * factor ** skip, ceiling)

    if total(2.0, cap) >= left:
        return pause(2.0, cap)
    if total(2.0, float("inf")) >= left:
        low, high = cap, left
        for _ in range(40):
            mid = (low + high) / 2
            low, high = (low, mid) if total(2.0, mid) >= left else (mid, high)
        return pause(2.0, high)
    low, high = 2.0, 2.0
    while total(high, float("inf")) < left and high < 1e6:
        high *= 2
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (low, mid) if total(mid, float("inf")) >= left else (mid, high)
    return pause(high, float("inf"))


def _runtime(ctx: Any) -> dict[str, Any]:
    """The acting instance's runtime properties (the source's, in relationship hooks)."""
    if getattr(ctx, "source", None) is not None:
        return ctx.source.instance.runtime_properties
    return ctx.instance.runtime_properties
