"""One function wrapping every operation: tracing, tagging, policy, dry-run in a few lines.

    @wrap_operations
    def timed(ctx):
        started = time.perf_counter()
        try:
            return (yield)              # the owning plugin's hook runs here
        finally:
            ctx.logger.info("%s took %.3fs", ctx.operation.name, time.perf_counter() - started)

``timed`` is then a plugin (name it in an entry point, ``pkg.module:timed``): a hook
wrapper for each lifecycle hook (or those named in ``operations=``), all running the
same generator. Being a wrapper, it changes nothing about which operations run: an
operation no owning plugin implements is still skipped, wrapped or not.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterable
from typing import Any, overload

from orchestrator import hookimpl
from orchestrator.hookspecs import LIFECYCLE_HOOKS

WrapperFunction = Callable[[Any], Generator[None, Any, Any]]


class Wrappers:
    """A type-less plugin whose wrappers all run ``function(ctx)``."""

    def __init__(self, function: WrapperFunction, operations: Iterable[str] = LIFECYCLE_HOOKS,
                 name: str | None = None) -> None:
        self.function = function
        self.operations = tuple(operations)
        unknown = [op for op in self.operations if op not in LIFECYCLE_HOOKS]
        if unknown:
            raise ValueError(f"not lifecycle hooks: {', '.join(unknown)} (known: {', '.join(LIFECYCLE_HOOKS)})")
        self.__name__ = name or f"{function.__module__}.{function.__qualname__}"
        self.__doc__ = function.__doc__
        for op in self.operations:
            setattr(self, op, hookimpl(wrapper=True, specname=op)(self._wrapper(op)))

    def _wrapper(self, op: str) -> Callable[[Any], Generator[None, Any, Any]]:
        function = self.function

        def wrapper(ctx: Any) -> Generator[None, Any, Any]:
            return (yield from function(ctx))

        wrapper.__name__ = wrapper.__qualname__ = op
        return wrapper

    def __call__(self, ctx: Any) -> Generator[None, Any, Any]:
        return self.function(ctx)

    def __repr__(self) -> str:
        return f"<orchestrator.sdk.Wrappers {self.__name__}: {', '.join(self.operations)}>"


@overload
def wrap_operations(function: WrapperFunction, /) -> Wrappers: ...
@overload
def wrap_operations(*, operations: Iterable[str] = ..., name: str | None = ...) -> Callable[[WrapperFunction],
                                                                                          Wrappers]: ...


def wrap_operations(function: WrapperFunction | None = None, /, *, operations: Iterable[str] = LIFECYCLE_HOOKS,
                    name: str | None = None) -> Any:
    """Make a generator function ``f(ctx)`` (code before ``yield`` runs before the hook) a plugin
    wrapping every lifecycle operation, or those in ``operations``. Use as ``@wrap_operations``
    or ``@wrap_operations(operations=("create", "delete"))``."""
    if function is not None:
        return Wrappers(function, operations, name)
    caller = sys._getframe(1).f_globals.get("__name__")

    def decorate(fn: WrapperFunction) -> Wrappers:
        return Wrappers(fn, operations, name or (f"{caller}.{fn.__qualname__}" if caller else None))

    return decorate
