"""Routing lifecycle hooks to the plugin that owns a node's (or relationship's) type.

The one place that calls lifecycle hooks. For owner P and operation O the caller runs
P's implementations of O plus the wrappers of plugins that own no types; other
type-owning plugins are excluded. Whether O exists for P's types at all depends on P's
own (non-wrapper) implementations only: installing a tracing wrapper never makes the
engine run operations nothing implements. Callers are built once per (owner, operation)
and cached, so routing costs one dict lookup per call on top of pluggy's own call.
"""

from __future__ import annotations

from typing import Any

from pluggy._callers import _multicall

from orchestrator.errors import PluginError
from orchestrator.plugins import PluginManager


class Dispatcher:
    def __init__(self, pm: PluginManager) -> None:
        self.pm = pm
        self._callers: dict[tuple[str | None, str], Any] = {}
        self._owners = set(pm.type_owner.values())

    def caller(self, owner: str | None, operation: str) -> Any | None:
        """The hook caller for ``operation`` on a type owned by ``owner``; None if the owner does
        not implement it (then there is nothing to do, whatever wrappers exist)."""
        key = (owner, operation)
        try:
            return self._callers[key]
        except KeyError:
            pass
        if owner is not None and not self.pm.has_plugin(owner):
            raise PluginError(f"plugin '{owner}' is not installed (or failed to load); it owns types this "
                              f"deployment uses")
        caller = None
        if owner is not None and self.pm.implements(owner, operation):  # known without importing the plugin
            self.pm.load_pending()  # a hook call runs every plugin's wrappers: all must be in
            if not self.pm.has_plugin(owner):  # known from the index, but its import failed now
                raise PluginError(f"plugin '{owner}' failed to load: {self.pm.failure(owner)}")
            remove = [self.pm.get_plugin(name) for name in self._owners if name != owner]
            caller = self.pm.subset_hook_caller(operation, [p for p in remove if p is not None])
            caller = _direct(self.pm, caller) or caller
        self._callers[key] = caller
        return caller

    def implements(self, owner: str | None, operation: str, hierarchy: list[str]) -> bool:
        """Whether ``operation`` really does something for a type (``hierarchy``, root first).

        A plugin object routing several types to classes (``orchestrator.sdk.Plugin``) has one
        hookimpl for all of them; its ``handles(operation, hierarchy)`` tells which types'
        classes implement it. That decides, for instance, update in place or replace.
        """
        if self.caller(owner, operation) is None:
            return False
        handles = getattr(self.pm.get_plugin(owner), "handles", None) if owner is not None else None
        return bool(handles(operation, hierarchy)) if callable(handles) else True

    def check_owners(self, owners: set[str | None]) -> list[str]:
        """Owners a plan needs that this manager lacks (checked before anything runs)."""
        return sorted(o for o in owners if o is not None and not self.pm.has_plugin(o))


class DirectCall:
    """The one implementation behind a hook caller, called without pluggy's machinery (most
    of the engine's cost per call on top of a no-op hook), returning what pluggy would: the
    value for a ``firstresult`` hook, else a list of the non-None results. Used when there
    is exactly one implementation, no wrapper, and no call monitoring
    (``ORCHESTRATOR_TRACE_HOOKS``) that must see the call."""

    __slots__ = ("_caller", "_firstresult", "_function", "_with_ctx")

    def __init__(self, caller: Any, impl: Any) -> None:
        self._caller = caller
        self._function = impl.function
        self._with_ctx = bool(impl.argnames)  # a hookimpl may take fewer arguments than its spec
        self._firstresult = bool(caller.spec.opts.get("firstresult"))

    def __call__(self, *, ctx: Any) -> Any:
        result = self._function(ctx) if self._with_ctx else self._function()
        if self._firstresult:
            return result
        return [] if result is None else [result]

    def get_hookimpls(self) -> list[Any]:
        return self._caller.get_hookimpls()


def _direct(pm: PluginManager, caller: Any) -> DirectCall | None:
    """``caller`` as a ``DirectCall`` when that calls the same thing; else None."""
    if getattr(pm, "_inner_hookexec", None) is not _multicall:
        return None
    impls = caller.get_hookimpls()
    if (caller.spec is None or tuple(caller.spec.argnames) != ("ctx",) or len(impls) != 1
            or impls[0].hookwrapper or impls[0].wrapper or impls[0].argnames not in ((), ("ctx",))):
        return None  # not a lifecycle hook (``validate_node(node)``), or more than one function to run
    return DirectCall(caller, impls[0])
