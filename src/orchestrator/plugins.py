"""Building a plugin manager: built-ins, entry-point discovery, selection, load errors.

``get_plugin_manager()`` builds a fresh manager on every call (no import-time global),
so tests and embedding programs build their own. A plugin that fails to import,
register or declare types is reported in ``pm.load_errors`` and skipped; the host and
the other plugins keep working.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import os
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs
import pluggy

from orchestrator import DISTRIBUTION, ENTRY_POINT_GROUP, PROJECT_NAME, hookspecs
from orchestrator.dsl.problems import BlueprintError, did_you_mean
from orchestrator.dsl.types import TypeSource

DEFAULT_PLUGINS = ("orchestrator.builtin_types",)
BUILTIN_NAME = "orchestrator.builtin"


@attrs.define(slots=True)
class PluginInfo:
    name: str
    distribution: str | None
    version: str | None
    module: str
    types: list[str]
    hooks: list[str]
    wrappers: list[str]


@attrs.define(slots=True)
class LoadError:
    plugin: str
    distribution: str | None
    version: str | None
    error: str
    fatal: bool = True  # False for warnings: the plugin is loaded

    def __str__(self) -> str:
        dist = f" ({self.distribution} {self.version})" if self.distribution else ""
        return f"plugin '{self.plugin}'{dist}: {self.error}"


class PluginManager(pluggy.PluginManager):
    """pluggy's manager plus what the engine needs: type sources and load errors."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.load_errors: list[LoadError] = []
        self.type_sources: list[TypeSource] = []
        self.type_owner: dict[str, str] = {}  # type name -> plugin name
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        # Secrets of the running execution: the hook tracer masks its output with it.
        self.masker: Callable[[str], str] = _unmasked

    # -- registration ------------------------------------------------------------

    def add_plugin(self, plugin: object, name: str, distribution: str | None = None,
                   version: str | None = None) -> bool:
        """Register, check hook names and collect types; on any problem report and skip."""
        self._dists[name] = (distribution, version)
        try:
            self.register(plugin, name=name)
        except Exception as exc:  # pluggy validation, duplicate names
            self._fail(name, f"cannot be registered: {exc}")
            return False
        unknown = [
            (hook.name, impl.function) for hook in self.get_hookcallers(plugin) or []
            if not hook.has_spec() for impl in hook.get_hookimpls() if impl.plugin is plugin
        ]
        if unknown:
            self.unregister(plugin)
            for hook_name, fn in unknown:
                where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', hook_name)}"
                self._fail(name, f"hookimpl '{hook_name}' ({where}) matches no hook"
                           f"{did_you_mean(hook_name, (*hookspecs.LIFECYCLE_HOOKS, 'register_types'))}")
            return False
        return self._collect_types(plugin, name)

    def _collect_types(self, plugin: object, name: str) -> bool:
        from orchestrator.dsl.loader import plugin_type_source

        impls = [i for i in self.hook.register_types.get_hookimpls() if i.plugin is plugin]
        if not impls:
            self._warn_unreachable(plugin, name, owns_types=False)
            return True
        try:
            result = impls[0].function()
            source = plugin_type_source(name, result or {})
        except BlueprintError as exc:
            self.unregister(plugin)
            self._fail(name, f"register_types returned invalid YAML: {exc}")
            return False
        except Exception as exc:
            self.unregister(plugin)
            self._fail(name, f"register_types failed: {type(exc).__name__}: {exc}")
            return False
        owned, taken = [], []
        for section in ("node_types", "relationships", "data_types"):
            definitions = source.sections.get(section) or {}
            for type_name in definitions:
                other = self.type_owner.get(type_name)
                if other is not None and section == "data_types" and self._same_data_type(type_name, definitions):
                    continue
                (taken if other is not None and other != name else owned).append((type_name, other))
        if taken:  # the first plugin keeps its types; the second is skipped as a whole
            self.unregister(plugin)
            for type_name, other in taken:
                self._fail(name, f"type '{type_name}' is registered by two plugins: '{other}' and '{name}'")
            return False
        for type_name, _ in owned:
            self.type_owner[type_name] = name
        self.type_sources.append(source)
        self._warn_unreachable(plugin, name, owns_types=bool(self.types_of(name)))
        return True

    def _same_data_type(self, type_name: str, definitions: Mapping[str, Any]) -> bool:
        for source in self.type_sources:
            earlier = (source.sections.get("data_types") or {}).get(type_name)
            if earlier is not None:
                return bool(earlier == definitions[type_name])
        return False

    def _warn_unreachable(self, plugin: object, name: str, owns_types: bool) -> None:
        if owns_types:
            return
        for hook in self.get_hookcallers(plugin) or []:
            if hook.name not in hookspecs.LIFECYCLE_HOOKS:
                continue
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper):
                    self.load_errors.append(LoadError(
                        name, *self._dists.get(name, (None, None)),
                        f"implements '{hook.name}' but registers no types, so it is never called"
                        " (use @hookimpl(wrapper=True) to see every call)", fatal=False))

    def _fail(self, name: str, error: str) -> None:
        dist, version = self._dists.get(name, (None, None))
        self.load_errors.append(LoadError(name, dist, version, error))

    # -- introspection -----------------------------------------------------------

    def types_of(self, name: str) -> list[str]:
        return [t for t, owner in self.type_owner.items() if owner == name]

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            hooks, wrappers = [], []
            for hook in self.get_hookcallers(plugin) or []:
                for impl in hook.get_hookimpls():
                    if impl.plugin is plugin:
                        (wrappers if impl.wrapper or impl.hookwrapper else hooks).append(hook.name)
            dist, version = self._dists.get(name, (None, None))
            module = getattr(plugin, "__name__", type(plugin).__module__)
            infos.append(PluginInfo(name, dist, version, module, self.types_of(name),
                                    sorted(set(hooks)), sorted(set(wrappers))))
        return infos


def _selected(name: str, env: Mapping[str, str]) -> bool:
    only = [p.strip() for p in env.get("ORCHESTRATOR_PLUGINS", "").split(",") if p.strip()]
    disabled = [p.strip() for p in env.get("ORCHESTRATOR_DISABLE_PLUGINS", "").split(",") if p.strip()]
    if only and name not in only:
        return False
    return name not in disabled


def get_plugin_manager(
    plugins: Iterable[object] | None = None,
    *,
    entry_points: bool = True,
    env: Mapping[str, str] | None = None,
) -> PluginManager:
    """A fresh manager: the core's built-ins, then the given plugins, then entry points.

    ``ORCHESTRATOR_PLUGINS=a,b`` loads only the named entry points;
    ``ORCHESTRATOR_DISABLE_PLUGINS=a,b`` skips them; ``ORCHESTRATOR_TRACE_HOOKS=1``
    prints every hook call.
    """
    env = os.environ if env is None else env
    pm = PluginManager()
    for module_name in DEFAULT_PLUGINS:
        pm.add_plugin(importlib.import_module(module_name), BUILTIN_NAME, DISTRIBUTION, _version(DISTRIBUTION))
    for plugin in plugins or ():
        name = getattr(plugin, "__name__", None) or type(plugin).__name__
        pm.add_plugin(plugin, name, None, None)
    if entry_points:
        load_entry_points(pm, env)
    if env.get("ORCHESTRATOR_TRACE_HOOKS", "") not in ("", "0"):
        enable_tracing(pm)
    return pm


def load_entry_points(pm: PluginManager, env: Mapping[str, str]) -> None:
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if not _selected(ep.name, env):
            continue
        dist = ep.dist.name if ep.dist else None
        version = ep.dist.version if ep.dist else None
        if pm.has_plugin(ep.name) or ep.name in pm._dists:
            first = pm._dists.get(ep.name, (None, None))[0]
            if first != dist or dist is None:
                pm.load_errors.append(LoadError(ep.name, dist, version, f"entry point name '{ep.name}' is "
                                                f"already used by {first or 'another plugin'}; skipped", fatal=False))
            continue
        try:
            plugin = ep.load()
        except (Exception, SystemExit) as exc:  # a broken plugin must not take the host down
            pm._dists[ep.name] = (dist, version)
            pm._fail(ep.name, f"failed to import '{ep.value}': {type(exc).__name__}: {exc}")
            continue
        pm.add_plugin(plugin, ep.name, dist, version)


def _version(dist: str) -> str | None:
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def _unmasked(text: str) -> str:
    return text


def enable_tracing(pm: pluggy.PluginManager, stream: Any = None) -> None:
    """Print every hook call: hook, plugin(s), node instance, duration and outcome.

    Lines are masked with ``pm.masker`` (the running execution's secrets, set by the
    engine), read at each call: tracing is enabled before any execution exists.
    """
    out = stream or sys.stderr
    starts: dict[int, float] = {}

    def before(hook_name: str, impls: list, kwargs: dict) -> None:
        starts[id(kwargs)] = time.perf_counter()

    def after(outcome: Any, hook_name: str, impls: list, kwargs: dict) -> None:
        elapsed = (time.perf_counter() - starts.pop(id(kwargs), time.perf_counter())) * 1000
        plugins = ",".join(dict.fromkeys(pm.get_name(i.plugin) or "?" for i in impls))
        ctx = kwargs.get("ctx")
        target = getattr(ctx, "describe", lambda: "")() if ctx is not None else ""
        result = "ok" if outcome.exception is None else f"error {type(outcome.exception).__name__}: {outcome.exception}"
        line = f"[trace] {hook_name} plugins={plugins or '-'} {target} {elapsed:.2f}ms {result}"
        print(getattr(pm, "masker", _unmasked)(line), file=out, flush=True)

    pm.add_hookcall_monitoring(before, after)
