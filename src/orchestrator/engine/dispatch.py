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
