"""Routing lifecycle hooks to the plugin that owns a node's (or relationship's) type.

The one place that calls lifecycle hooks. For owner P and operation O the caller runs
P's implementations of O plus the wrappers of plugins that own no types; other
type-owning plugins are excluded. Callers are built once per (owner, operation) and
cached, so routing costs one dict lookup per call on top of pluggy's own call.
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
        """The hook caller for ``operation`` on a type owned by ``owner``; None if nothing implements it."""
        key = (owner, operation)
        try:
            return self._callers[key]
        except KeyError:
            pass
        if owner is not None and not self.pm.has_plugin(owner):
            raise PluginError(f"plugin '{owner}' is not installed (or failed to load); it owns types this "
                              f"deployment uses")
        remove = [self.pm.get_plugin(name) for name in self._owners if name != owner]
        hook = self.pm.subset_hook_caller(operation, [p for p in remove if p is not None])
        caller = hook if hook.get_hookimpls() else None
        self._callers[key] = caller
        return caller

    def check_owners(self, owners: set[str | None]) -> list[str]:
        """Owners a plan needs that this manager lacks (checked before anything runs)."""
        return sorted(o for o in owners if o is not None and not self.pm.has_plugin(o))
