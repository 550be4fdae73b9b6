"""Simulated crashes and transient errors in any hook, for conformance checks and plugin tests.

A real crash (``kill -9``, a power cut) leaves the state as the last write left it: the
operation recorded as started, with the runtime properties the hook persisted itself
(``ctx.instance.update()``), and none of what it changed afterwards. ``Faults`` is a
type-less wrapper plugin that reproduces exactly that in-process for one operation of
one node: it raises ``SimulatedCrash`` (a ``BaseException`` nothing catches as an error)
at the chosen point, and ``CrashableStore`` drops every instance write from then on.
The points of an operation are:

- ``before``: the engine recorded the operation as started, the hook has not run
  (the same state as "the previous operation just finished");
- ``save #n``: inside the hook, at its n-th ``update()``, before that update is written;
- ``after``: the hook returned, its success not yet recorded (and its runtime property
  changes since its last ``update()`` lost).

It can also raise a ``RecoverableError`` before or after the hook (a transient error
the engine retries). A new ``Orchestrator`` on the same state file then resumes like a
restarted process.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

from orchestrator import hookimpl
from orchestrator.errors import RecoverableError
from orchestrator.hookspecs import LIFECYCLE_HOOKS, RELATIONSHIP_OPERATIONS
from orchestrator.state import SqliteStore


@attrs.define(frozen=True)
class Crash:
    """Where to crash: in ``operation`` of node template ``node`` (for a relationship hook, the
    source; ``target`` picks one relationship), before its ``at_save``-th ``update()`` is
    written, or ``before`` the hook runs, or (the default) ``after`` it returned."""

    operation: str
    node: str
    at_save: int | None = None
    before: bool = False
    target: str | None = None

    def arm(self, faults: Faults) -> None:
        faults.arm(self.node, self.operation, target=self.target, crash_before=self.before,
                   crash_at_save=self.at_save, crash_after=not self.before and self.at_save is None)


class SimulatedCrash(BaseException):
    """The process "dies" here: nothing after this point runs or is recorded."""


class CrashableStore(SqliteStore):
    """The state as a process that dies at a simulated crash leaves it: once the crash fired,
    no instance write lands (the execution's own end is still recorded, so the next run
    needs no lock takeover)."""

    def __init__(self, path: Path, faults: Faults, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self.faults = faults

    def write(self, *args: Any, **kwargs: Any) -> None:
        if not self.faults.dead:
            super().write(*args, **kwargs)


class _SaveTrap:
    """Stands in for an instance of ``ctx`` during the watched hook: counts (and may crash at) saves."""

    def __init__(self, inner: Any, faults: Faults) -> None:
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_faults", faults)

    def update(self) -> None:
        faults = self._faults
        faults.saves += 1
        if faults.crash_at_save == faults.saves and faults.fired is None:
            faults.fired = f"save #{faults.saves}"
            faults.dead = True
            raise SimulatedCrash(f"simulated crash in {faults.operation}, before save #{faults.saves} was written")
        self._inner.update()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def __setattr__(self, name: str, value: Any) -> None:  # e.g. runtime_properties = {...}
        setattr(self._inner, name, value)


class Faults:
    """A type-less plugin: its wrappers inject one fault into one operation of one node.

    Disarmed it passes every call through untouched; ``arm`` makes it watch one
    operation: ``node`` (template name) and ``operation`` (a hook name), plus, for a
    relationship hook, ``target`` (the target template) and ``relationship`` (its type).
    """

    def __init__(self, name: str = "orchestrator.faults") -> None:
        self.__name__ = name
        self.arm(None)
        for op in LIFECYCLE_HOOKS:
            setattr(self, op, hookimpl(wrapper=True, specname=op)(self._wrapper(op)))

    def arm(self, node: str | None, operation: str = "create", *, target: str | None = None,
            relationship: str | None = None, crash_before: bool = False, crash_at_save: int | None = None,
            crash_after: bool = False, retry_before: bool = False, retry_after: bool = False) -> Faults:
        self.node = node  # None: disarmed
        self.operation = operation
        self.target = target
        self.relationship = relationship
        self.crash_before = crash_before  # crash once the engine recorded the operation as started
        self.crash_at_save = crash_at_save  # crash when the hook calls update() the n-th time
        self.crash_after = crash_after  # crash once the hook returned (before success is recorded)
        self.retry_before = retry_before  # RecoverableError before the real hook runs
        self.retry_after = retry_after  # RecoverableError after the real hook returned
        self.fired: str | None = None  # which fault happened: "before", "save #n", "after"
        self.dead = False  # a simulated crash fired: the "process" records nothing more
        self.saves = 0  # update() calls of the current attempt
        self.attempts: list[BaseException | None] = []  # outcome of each watched attempt
        return self

    def disarm(self) -> None:
        self.node = None

    @property
    def armed(self) -> bool:
        return self.node is not None

    def watches(self, ctx: Any, op: str) -> bool:
        if self.node is None or op != self.operation:
            return False
        if op in RELATIONSHIP_OPERATIONS:
            return (ctx.type == "relationship-instance" and ctx.source.node.id == self.node
                    and (self.target is None or ctx.target.node.id == self.target)
                    and (self.relationship is None or ctx.relationship.type == self.relationship))
        return ctx.type == "node-instance" and ctx.node.id == self.node

    def _wrapper(self, op: str) -> Any:
        def wrapper(ctx: Any) -> Iterator[None]:
            if not self.watches(ctx, op):
                return (yield)
            return (yield from self._inject(ctx))

        wrapper.__name__ = op
        return wrapper

    def _inject(self, ctx: Any) -> Iterator[None]:
        if self.fired is None and self.retry_before:
            self.fired = "before"
            self.attempts.append(None)
            raise RecoverableError(f"injected transient error before {self.operation}", retry_after=0)
        if self.fired is None and self.crash_before:
            self.fired = "before"
            self.dead = True
            raise SimulatedCrash(f"simulated crash before {self.operation} ran")
        self.saves = 0
        swapped = self._trap(ctx)
        try:
            result = yield
        except BaseException as exc:
            self.attempts.append(exc)
            raise
        finally:
            for holder, attr, inner in swapped:
                setattr(holder, attr, inner)
        self.attempts.append(None)
        if self.fired is None and (self.crash_after or self.crash_at_save is not None):
            self.fired = "after"
            self.dead = True
            raise SimulatedCrash(f"simulated crash after {self.operation} returned, before the engine recorded it")
        if self.fired is None and self.retry_after:
            self.fired = "after"
            raise RecoverableError(f"injected transient error after {self.operation}", retry_after=0)
        return result

    def _trap(self, ctx: Any) -> list[tuple[Any, str, Any]]:
        """Put save traps in place of the instances the hook may save; what to put back."""
        if ctx.type == "relationship-instance":
            holders = [(ctx.source, "instance"), (ctx.target, "instance")]
        else:
            holders = [(ctx, "_instance")]
        swapped = []
        for holder, attr in holders:
            inner = getattr(holder, attr)
            setattr(holder, attr, _SaveTrap(inner, self))
            swapped.append((holder, attr, inner))
        return swapped
