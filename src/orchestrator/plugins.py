"""Building a plugin manager: built-ins, entry-point discovery, selection, load errors.

``get_plugin_manager()`` builds a fresh manager on every call (no import-time global),
so tests and embedding programs build their own. A plugin that fails to import,
register or declare types is reported in ``pm.load_errors`` and skipped; the host and
the other plugins keep working. That holds for any ``BaseException`` a plugin raises
(``SystemExit`` included), for a ``register_types`` that never returns (it runs in a
daemon thread, abandoned after ``ORCHESTRATOR_PLUGIN_TIMEOUT`` seconds), and for types
that do not resolve against the core's and the other loaded plugins' types.

An entry-point plugin that loaded cleanly before, whose code has not changed since, is not
imported at discovery: its types and hook names come from the index file
(``plugin_index.Facts``) and it is *pending*. It is imported and registered the first
time anything needs more than its types: a hook call through ``pm.hook`` (the dispatcher,
``validate_node`` of one of its types), ``get_plugin`` or a listing of plugins. So ``plan``
of a blueprint with no plugin checks imports no plugin, the way ``status`` imports none.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import math
import os
import queue
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, NamedTuple

import pluggy

from orchestrator import DISTRIBUTION, ENTRY_POINT_GROUP, PROJECT_NAME, hookspecs
from orchestrator.dsl.problems import BlueprintError, Problem, Problems, did_you_mean
from orchestrator.dsl.types import (
    KINDS,
    TypeSource,
    check_property_types,
    parse_type_section,
    plugin_mark,
    resolve_types,
)
from orchestrator.dsl.yaml_source import SCALAR_TYPES, YDict, YList
from orchestrator.plugin_index import (
    Facts,
    Found,
    Index,
    code_of,
    code_stamp,
    plugin_entry_points,
    remember,
    types_digest,
)
from orchestrator.settings import positive_seconds

DEFAULT_PLUGINS = ("orchestrator.builtin_types",)
BUILTIN_NAME = "orchestrator.builtin"
DEFAULT_TIMEOUT = 10.0  # seconds a plugin's register_types may take


class PluginInfo(NamedTuple):
    name: str
    distribution: str | None
    version: str | None
    module: str
    types: list[str]
    hooks: list[str]
    wrappers: list[str]


class LoadError(NamedTuple):
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

    def __init__(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._pending: dict[str, tuple[Found, Facts]] = {}  # entry points known from the index, not imported
        self._loading = threading.RLock()  # engine threads may ask for hooks at once: one loads, the others wait
        self._registrar: threading.Thread | None = None  # registering now: its own use of ``hook`` loads nothing
        super().__init__(PROJECT_NAME)
        self.timeout = timeout
        self._call = _PluginCaller(timeout)
        self._impl_marker = PROJECT_NAME + "_impl"
        self.add_hookspecs(hookspecs)
        self.load_errors: list[LoadError] = []
        self.type_sources: list[TypeSource] = []
        self.type_owner: dict[str, str] = {}  # type name -> plugin name
        self._dists: dict[str, tuple[str | None, str | None]] = {}
        self._targets: dict[str, str] = {}  # plugin name -> its entry point's value ("pkg.mod:obj")
        self._from_text: set[str] = set()  # plugins whose types came as YAML text (real positions)
        self._answers: dict[str, Any] = {}  # plugin name -> what its register_types returned
        self._imported: dict[str, list[str]] = {}  # entry points imported here (new facts) -> their warnings
        # Secrets of the running execution: the hook tracer masks its output with it.
        self.masker: Callable[[str], str] = _unmasked

    # -- plugins known from the index, imported when first needed -----------------

    @property
    def hook(self) -> pluggy.HookRelay:  # type: ignore[override]
        """pluggy's hook relay, with every pending plugin imported and registered first."""
        if self._pending and self._registrar is not threading.current_thread():
            self.load_pending()
        return self._relay

    @hook.setter
    def hook(self, relay: pluggy.HookRelay) -> None:
        self._relay = relay

    def has_plugin(self, name: str) -> bool:
        return name in self._pending or super().has_plugin(name)

    def get_plugin(self, name: str) -> Any | None:
        if name in self._pending:
            self.load_pending()
        return super().get_plugin(name)

    def get_plugins(self) -> set[Any]:
        self.load_pending()
        return super().get_plugins()

    def list_name_plugin(self) -> list[tuple[str, Any]]:
        self.load_pending()
        return super().list_name_plugin()

    def implements(self, name: str | None, hook_name: str) -> bool:
        """Whether plugin ``name`` has its own (non-wrapper) ``hook_name``, without importing it."""
        if name in self._pending:
            return hook_name in self._pending[name][1].hooks
        plugin = super().get_plugin(name) if name is not None else None
        caller = getattr(self._relay, hook_name, None)
        return plugin is not None and caller is not None and any(
            i.plugin is plugin and not (i.wrapper or i.hookwrapper) for i in caller.get_hookimpls())

    def failure(self, name: str) -> str | None:
        """Why plugin ``name`` is not loaded (its last error), if it failed."""
        return next((e.error for e in reversed(self.load_errors) if e.plugin == name and e.fatal), None)

    def defer(self, found: Found, facts: Facts) -> bool:
        """Take a plugin's types and warnings from the index and import it only when needed.

        False if its remembered types no longer fit (another plugin took one of them):
        then it is loaded now, so whatever goes wrong is reported as it always is.
        """
        try:
            source, from_text = _type_source(found.name, facts.types)
        except (BlueprintError, _BadResult):
            return False
        self._dists[found.name] = (found.dist, found.version)
        self._targets[found.name] = found.value
        if not self._take_types(found.name, source, from_text, quiet=True):
            return False
        self._pending[found.name] = (found, facts)
        self._answers[found.name] = facts.types
        self.load_errors.extend(LoadError(found.name, found.dist, found.version, warning, fatal=False)
                                for warning in facts.warnings)
        return True

    def load_pending(self) -> None:
        """Import and register the pending plugins (their types are already in).

        Another thread asking meanwhile waits until all are in: a hook caller built
        while some were missing would route calls wrongly.
        """
        if not self._pending or self._registrar is threading.current_thread():
            return
        with self._loading, self._registering():
            for name, (found, _facts) in list(self._pending.items()):
                plugin = _import(self, found)
                if plugin is _FAILED or not self.add_plugin(plugin, name, found.dist, found.version, types=False):
                    self._forget_types(name)
                del self._pending[name]

    def learned(self) -> dict[str, Facts]:
        """Facts of the entry points this manager imported that are still registered, cleanly."""
        failed = {e.plugin for e in self.load_errors if e.fatal}
        found: dict[str, Facts] = {}
        for name, warnings in self._imported.items():
            plugin = super().get_plugin(name)
            answer = self._answers.get(name)
            code = code_of(self._targets[name])
            stamp = code_stamp(code) if code is not None else None
            if plugin is None or code is None or stamp is None or name in failed or not _json_safe(answer):
                continue
            hooks, wrappers = self._hooks_of(plugin)
            found[name] = Facts(self._targets[name], self._dists[name][1], code, stamp, answer,
                                hooks, wrappers, warnings)
        return found

    def _hooks_of(self, plugin: object) -> tuple[list[str], list[str]]:
        """The hooks a registered plugin implements, sorted: its own, and those it wraps."""
        hooks, wrappers = set(), set()
        for hook in vars(self._relay).values():
            for impl in hook.get_hookimpls():
                if impl.plugin is plugin:
                    (wrappers if impl.wrapper or impl.hookwrapper else hooks).add(hook.name)
        return sorted(hooks), sorted(wrappers)

    # -- registration ------------------------------------------------------------

    def parse_hookimpl_opts(self, plugin: Any, name: str) -> Any:
        """pluggy's answer, sooner for the usual plugins: pluggy looks each of a plugin's names up
        with ``inspect.getattr_static``, most of the manager's start-up. A dunder is never a hook
        (an SDK plugin object has some thirty), and a plain function in the plugin's own dict (a
        module's hooks, the SDK's generated ones) is what that lookup would find."""
        if name[:2] == "__" and name[-2:] == "__":
            return None
        try:
            own = object.__getattribute__(plugin, "__dict__")
        except AttributeError:
            own = None
        value = own.get(name) if isinstance(own, dict) else None
        if type(value) is types.FunctionType:
            opts = getattr(value, self._impl_marker, None)
            return opts if isinstance(opts, dict) else None
        if type(plugin) is types.ModuleType and not isinstance(value, (staticmethod, classmethod, types.MethodType)):
            return None  # a module has nothing else to look at
        return super().parse_hookimpl_opts(plugin, name)

    def add_plugin(self, plugin: object, name: str, distribution: str | None = None,
                   version: str | None = None, *, types: bool = True) -> bool:
        """Register, check hook names and collect types (unless already in); on any problem report and skip."""
        self._dists[name] = (distribution, version)
        with self._registering():
            return self._add(plugin, name, types)

    @contextlib.contextmanager
    def _registering(self) -> Iterator[None]:
        """pluggy's own uses of ``hook`` while (un)registering must not import the pending plugins."""
        previous, self._registrar = self._registrar, threading.current_thread()
        try:
            yield
        finally:
            self._registrar = previous

    def _add(self, plugin: object, name: str, types: bool) -> bool:
        try:
            self.register(plugin, name=name)
        except BaseException as exc:  # pluggy validation, duplicate names, a hostile __getattr__
            if super().get_plugin(name) is plugin:
                self.unregister(plugin, name=name)  # pluggy may have added some hookimpls already
            problems = _signature_problems(self, plugin)  # our words, when we have them
            for problem in problems or [f"cannot be registered: {exc}"]:
                self._fail(name, problem)
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
                           f"{did_you_mean(hook_name, _hook_names(self))}")
            return False
        idle = [never for hook in self.get_hookcallers(plugin) or [] for impl in hook.get_hookimpls()
                if impl.plugin is plugin and not (impl.wrapper or impl.hookwrapper)
                and (never := _never_runs(hook.name, impl.function))]
        if idle:
            self.unregister(plugin)
            for problem in idle:
                self._fail(name, problem)
            return False
        return self._collect_types(plugin, name) if types else True

    def _collect_types(self, plugin: object, name: str) -> bool:
        impls = [i for i in self.hook.register_types.get_hookimpls() if i.plugin is plugin]
        if not impls:
            self._warn_unreachable(plugin, name, owns_types=False)
            return True
        register_types = impls[0].function
        answer: list[Any] = []
        call = _inline if name == BUILTIN_NAME else self._call  # the core's own types need no watchdog thread
        done, value = call(lambda: _type_source(name, _kept(answer, register_types())))
        if not done or isinstance(value, BaseException):
            self.unregister(plugin)
            self._fail(name, _types_failure(value) if done else
                       f"register_types did not return within {self.timeout:g}s; skipped")
            return False
        if not self._take_types(name, *value):
            self.unregister(plugin)
            return False
        self._answers[name] = answer[0]
        self._warn_unreachable(plugin, name, owns_types=bool(self.types_of(name)))
        return True

    def _take_types(self, name: str, source: TypeSource, from_text: bool, quiet: bool = False) -> bool:
        """Own the source's types, unless another plugin has one of them (then report unless quiet, take none)."""
        owned, taken = [], []
        for section in ("node_types", "relationships", "data_types"):
            definitions = source.sections.get(section) or {}
            for type_name in definitions:
                other = self.type_owner.get(type_name)
                if other is not None and section == "data_types" and self._same_data_type(type_name, definitions):
                    continue
                (taken if other is not None and other != name else owned).append((type_name, other))
        if taken:  # the first plugin keeps its types; the second is skipped as a whole
            for type_name, other in [] if quiet else taken:
                self._fail(name, f"type '{type_name}' is registered by two plugins: '{other}' and '{name}'")
            return False
        if from_text:
            self._from_text.add(name)
        for type_name, _ in owned:
            self.type_owner[type_name] = name
        self.type_sources.append(source)
        return True

    def check_types(self) -> None:
        """Unregister every plugin whose types do not resolve; report each as a load error.

        Types are resolved against the core's and all loaded plugins' (a plugin may use
        a data type another one registers). A failing plugin's types are removed, so a
        plugin building on them fails in the next round; repeat until nothing fails.
        """
        dropped: dict[str, str] = {}  # type name -> the failed plugin that registered it
        while _type_problems(self.type_sources):
            failing = self._failing_plugins()
            if not failing:
                return  # nothing to blame a plugin for; a blueprint using the types reports it
            for name in failing:
                for type_name in self.types_of(name):
                    dropped[type_name] = name
            for name, problems in failing.items():
                messages = [self._problem_text(name, p) for p in problems]
                hints = [f"type '{t}' was registered by plugin '{dropped[t]}', which failed to load"
                         for t in self._references(name) if t in dropped]
                self._drop(name, "invalid types: " + "; ".join(messages) + "".join(f" ({h})" for h in hints))

    def _failing_plugins(self) -> dict[str, list[Problem]]:
        """The problems again, on copies of the sources marked ``<plugin NAME>``, by plugin.

        Only done when there is a problem: marking every source costs more than checking.
        """
        marked = [s if s.plugin in self._from_text else
                  TypeSource(s.origin, _marked(s.sections, plugin_mark(s.plugin or s.origin)), s.plugin)
                  for s in self.type_sources]
        by_plugin: dict[str, list[Problem]] = {}
        for problem in _type_problems(marked):
            name = _plugin_of(problem.mark.file)
            if name is not None and self.has_plugin(name):
                by_plugin.setdefault(name, []).append(problem)
        return by_plugin

    def _problem_text(self, name: str, problem: Problem) -> str:
        return str(problem) if name in self._from_text else problem.message

    def _references(self, name: str) -> list[str]:
        """Type names the plugin's own types derive from or use as property types."""
        found: list[str] = []
        for source in self.type_sources:
            if source.plugin != name:
                continue
            for section in KINDS:
                for body in (source.sections.get(section) or {}).values():
                    if not isinstance(body, dict):
                        continue
                    found.append(body.get("derived_from"))
                    for prop in (body.get("properties") or {}).values():
                        if isinstance(prop, dict):
                            found.append(prop.get("type"))
                            entry = prop.get("entry_schema")
                            found.append(entry.get("type") if isinstance(entry, dict) else entry)
        return list(dict.fromkeys(t for t in found if isinstance(t, str)))

    def _drop(self, name: str, error: str) -> None:
        """Unregister a loaded (or forget a pending) plugin and forget its types."""
        if self._pending.pop(name, None) is None:
            with self._registering():
                self.unregister(name=name)
        self._forget_types(name)
        self._fail(name, error)

    def _forget_types(self, name: str) -> None:
        self.type_sources = [s for s in self.type_sources if s.plugin != name]
        self.type_owner = {t: owner for t, owner in self.type_owner.items() if owner != name}
        for source in self.type_sources:  # a data type it shared (identically) now belongs to the other plugin
            for type_name in source.sections.get("data_types") or {}:
                self.type_owner.setdefault(type_name, source.plugin or source.origin)

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
            if hook.name not in hookspecs.ROUTED_HOOKS:
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

    def cloudify_packs(self) -> list[tuple[str, Any]]:
        """``(plugin name, pack)`` for every Cloudify pack the plugins ship; asked lazily, once.

        A plugin whose hook raises or returns something that is not a pack is reported
        among the load errors and contributes nothing (a Cloudify blueprint needing it is
        refused with "not available offline").
        """
        cached = getattr(self, "_packs", None)
        if cached is not None:
            return cached
        from orchestrator.cloudify import CloudifyPack

        packs: list[tuple[str, Any]] = []
        for impl in self.hook.cloudify_packs.get_hookimpls():
            name = self.get_name(impl.plugin) or "?"
            try:
                result = list(impl.function() or ())
            except Exception as exc:
                self._fail(name, f"cloudify_packs failed: {_describe(exc)}")
                continue
            for pack in result:
                if isinstance(pack, CloudifyPack):
                    packs.append((name, pack))
                else:
                    self._fail(name, f"cloudify_packs returned {type(pack).__name__}, not a CloudifyPack")
        self._packs = packs
        return packs

    # -- introspection -----------------------------------------------------------

    def types_of(self, name: str) -> list[str]:
        return [t for t, owner in self.type_owner.items() if owner == name]

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            hooks, wrappers = self._hooks_of(plugin)
            dist, version = self._dists.get(name, (None, None))
            module = self._targets.get(name) or getattr(plugin, "__name__", type(plugin).__module__)
            infos.append(PluginInfo(name, dist, version, module, self.types_of(name), hooks, wrappers))
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
    prints every hook call; ``ORCHESTRATOR_PLUGIN_TIMEOUT`` bounds each
    ``register_types`` (seconds, default 10).
    """
    env = os.environ if env is None else env
    pm = PluginManager(timeout=plugin_timeout(env))
    index = plugin_entry_points(env) if entry_points else None
    core_version = index.core_version if index is not None else _version(DISTRIBUTION)
    try:
        for module_name in DEFAULT_PLUGINS:
            pm.add_plugin(importlib.import_module(module_name), BUILTIN_NAME, DISTRIBUTION, core_version)
        if plugins:
            known = _entry_points_of(plugins)
            for plugin in plugins:
                name, dist, version, target = known.get(id(plugin)) or (
                    getattr(plugin, "__name__", None) or type(plugin).__name__, None, None, None)
                if target:
                    pm._targets[name] = target
                pm.add_plugin(plugin, name, dist, version)
        if index is not None:
            load_entry_points(pm, env, index)
    finally:
        pm._call.close()
    digest = None if index is None else types_digest(
        [(source.plugin, pm._answers.get(source.plugin or "")) for source in pm.type_sources])
    if digest is None or index is None or digest != index.checked:  # else: the same types resolved last time
        pm.check_types()
        if any(e.fatal for e in pm.load_errors):
            digest = None
    if index is not None:
        remember(index, pm.learned(), digest)
    if env.get("ORCHESTRATOR_TRACE_HOOKS", "") not in ("", "0"):
        enable_tracing(pm)
    return pm


def load_entry_points(pm: PluginManager, env: Mapping[str, str], index: Index) -> None:
    for ep in index.entries:
        if not _selected(ep.name, env):
            continue
        dist, version = ep.dist, ep.version
        if pm.has_plugin(ep.name) or ep.name in pm._dists:
            first = pm._dists.get(ep.name, (None, None))[0]
            if first == dist and dist is not None:
                continue  # given explicitly as well: the same plugin, already registered
            if first != dist or dist is None:
                pm.load_errors.append(LoadError(ep.name, dist, version, f"entry point name '{ep.name}' is "
                                                f"already used by {first or 'another plugin'}; skipped", fatal=False))
            continue
        raw = index.facts.get(ep.name)
        facts = Facts.valid(ep, raw) if raw is not None else None
        if facts is not None and pm.defer(ep, facts):
            continue
        plugin = _import(pm, ep)
        if plugin is not _FAILED:
            before = len(pm.load_errors)
            pm.add_plugin(plugin, ep.name, dist, version)
            pm._imported[ep.name] = [e.error for e in pm.load_errors[before:] if e.plugin == ep.name]


_FAILED = object()


def _import(pm: PluginManager, ep: Found) -> Any:
    """The entry point's object, or ``_FAILED`` (reported as the plugin's load error)."""
    pm._targets[ep.name] = ep.value
    try:
        return ep.load()
    except BaseException as exc:  # a broken plugin must not take the host down, whatever it raises
        pm._dists[ep.name] = (ep.dist, ep.version)
        pm._fail(ep.name, f"failed to import '{ep.value}': {_describe(exc)}")
        return _FAILED


def _inline(fn: Callable[[], Any]) -> tuple[bool, Any]:
    """``_PluginCaller``'s answer, in this thread."""
    try:
        return True, fn()
    except Exception as exc:  # reported as a load error; a Ctrl-C still stops the command
        return True, exc


def _kept(box: list[Any], answer: Any) -> Any:
    box.append(answer)
    return answer


def _json_safe(answer: Any) -> bool:
    """Whether the answer reads back from JSON as itself (tuples, say, would not)."""
    import json

    try:
        return bool(json.loads(json.dumps(answer)) == answer)
    except (TypeError, ValueError, RecursionError):
        return False


def _entry_points_of(plugins: Iterable[object]) -> dict[int, tuple[str, str | None, str | None, str]]:
    """``id(plugin) -> (entry point name, distribution, version, value)`` for plugins an entry point names.

    A plugin given as an object (``orch.use(module)`` in tests) gets the name it has under
    the command line, so ``ctx.plugin``, events and messages read the same everywhere.
    Only modules already imported are looked at: nothing is loaded here.
    """
    import importlib.metadata as md

    wanted = {id(p) for p in plugins}
    found: dict[int, tuple[str, str | None, str | None, str]] = {}
    for ep in md.entry_points(group=ENTRY_POINT_GROUP):
        target: Any = sys.modules.get(ep.module)
        for part in (ep.attr or "").split(".") if ep.attr else ():
            target = getattr(target, part, None)
        if target is not None and id(target) in wanted and id(target) not in found:
            found[id(target)] = (ep.name, ep.dist.name if ep.dist else None, ep.dist.version if ep.dist else None,
                                 ep.value)
    return found


def near_miss_entry_points() -> list[LoadError]:
    """Warnings for entry points in a group that looks like ``orchestrator.plugins`` but is not.

    ``orchestrator.plugin`` or ``orchestrator_plugins`` is an easy typo, and such an
    entry point is otherwise silently ignored. Reads every distribution's entry points,
    so only ``plugins list`` asks.
    """
    import importlib.metadata as md

    warnings = []
    for group in sorted(md.entry_points().groups):
        if group == ENTRY_POINT_GROUP or not _looks_like_ours(group):
            continue
        for ep in md.entry_points(group=group):
            dist = ep.dist.name if ep.dist else None
            warnings.append(LoadError(
                ep.name, dist, ep.dist.version if ep.dist else None,
                f"entry point '{ep.name} = {ep.value}' is in group '{group}', not '{ENTRY_POINT_GROUP}', "
                f"so it is ignored (fix the group name in the distribution's pyproject.toml)", fatal=False))
    return warnings


def _looks_like_ours(group: str) -> bool:
    plain = group.lower().replace("-", ".").replace("_", ".").strip()
    if plain == ENTRY_POINT_GROUP:
        return True
    import difflib  # here: only `plugins list` asks

    return difflib.SequenceMatcher(None, plain, ENTRY_POINT_GROUP).ratio() >= 0.85


def _hook_names(pm: pluggy.PluginManager) -> list[str]:
    """The hooks that have a spec (a misspelled hookimpl makes pluggy add one without)."""
    return sorted(name for name, caller in vars(pm.hook).items()
                  if not name.startswith("_") and getattr(caller, "spec", None) is not None)


def _signature_problems(pm: PluginManager, plugin: object) -> list[str]:
    """Our words for the hookimpls pluggy would refuse: an argument the hook does not pass,
    a wrapper that is not a generator. Empty when all is well (or the plugin resists inspection:
    then pluggy's own check reports it)."""
    problems = []
    try:
        for attr in dir(plugin):
            opts = pm.parse_hookimpl_opts(plugin, attr)
            if not opts:
                continue
            fn = getattr(plugin, attr)
            hook_name = opts.get("specname") or attr
            caller = getattr(pm.hook, hook_name, None)
            spec = getattr(caller, "spec", None)
            if spec is None:
                continue  # a misspelled hook: reported once registered, with a suggestion
            where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', attr)}"
            valid = [*spec.argnames, *spec.kwargnames]
            wrong = [a for a in _required_args(fn) if a not in valid]
            if wrong:
                names = ", ".join(f"'{a}'" for a in wrong)
                problems.append(
                    f"hookimpl '{hook_name}' ({where}) takes {names}, which the hook does not pass; "
                    f"its arguments are: {', '.join(valid) or 'none'} (take only those you need, by name)")
            wrapper = opts.get("wrapper") or opts.get("hookwrapper")
            if wrapper and not inspect.isgeneratorfunction(fn):
                problems.append(f"hookimpl '{hook_name}' ({where}) is a wrapper but not a generator function: "
                                f"it must 'yield' exactly once (or raise before it)")
            elif not wrapper and (never := _never_runs(hook_name, fn)):
                problems.append(never)
    except Exception:
        return []
    return problems


def _never_runs(hook_name: str, fn: Any) -> str | None:
    """Why calling this (non-wrapper) hookimpl would run none of its body, if it would not:
    pluggy takes it, and the hook then does nothing, silently."""
    where = f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', hook_name)}"
    if inspect.iscoroutinefunction(fn) or inspect.isasyncgenfunction(fn):
        return (f"hookimpl '{hook_name}' ({where}) is 'async def': hooks are called, never awaited, so none of "
                f"its body would run; make it a plain function (asyncio.run() inside it if it needs a loop)")
    if inspect.isgeneratorfunction(fn):
        return (f"hookimpl '{hook_name}' ({where}) is a generator function (it holds 'yield'), so calling it "
                f"would run none of its body: drop the 'yield', or mark it @hookimpl(wrapper=True) if it "
                f"wraps the other implementations")
    return None


def _required_args(fn: Any) -> list[str]:
    """The arguments pluggy would pass by name: positional ones without a default."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return []
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    names = [p.name for p in signature.parameters.values() if p.kind in kinds and p.default is p.empty]
    return names[1:] if names[:1] == ["self"] else names


def plugin_timeout(env: Mapping[str, str]) -> float:
    """``ORCHESTRATOR_PLUGIN_TIMEOUT`` in seconds; the default unless it is a positive number."""
    return positive_seconds("ORCHESTRATOR_PLUGIN_TIMEOUT", DEFAULT_TIMEOUT, env)


class _BadResult(Exception):
    """``register_types`` returned something that is neither a mapping nor YAML text."""


def _type_source(name: str, result: Any) -> tuple[TypeSource, bool]:
    """The plugin's TypeSource, and whether it came as YAML text (with real positions)."""
    from orchestrator.dsl.loader import plugin_type_source

    if result is None:
        result = {}
    if not isinstance(result, (str, Mapping)):
        raise _BadResult(f"register_types must return a mapping or YAML text, got {type(result).__name__}")
    if not isinstance(result, str):
        where = _not_plain(result, "")
        if where is not None:
            raise _BadResult(f"register_types: {where} (types hold plain data: strings, numbers, booleans, "
                             f"null, lists and mappings; they are stored in every plan as JSON)")
    source = plugin_type_source(name, result)
    for section in KINDS:
        value = source.sections.get(section)
        if value is not None and not isinstance(value, Mapping):
            raise _BadResult(f"register_types: '{section}' must be a mapping of type name to definition, "
                             f"got {type(value).__name__}")
    return source, isinstance(result, str)


def _not_plain(value: Any, path: str) -> str | None:
    """Where in a ``register_types`` mapping a value is not JSON data, and what it is; None if nowhere."""
    kind = type(value)
    if kind is str or kind is bool or kind is int or value is None:
        return None
    if kind is float:
        return None if math.isfinite(value) else f"{path or 'a value'} is {value}, which JSON cannot hold"
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                return f"{path or 'the mapping'} has a key {key!r} that is not a string"
            found = _not_plain(item, f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            found = _not_plain(item, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    return f"{path or 'a value'} is a {kind.__name__}"


def _type_problems(sources: list[TypeSource]) -> list[Problem]:
    """Everything wrong with these types together: sections, definitions, parents, property types."""
    problems = Problems()
    defined: dict[str, dict] = {section: {} for section in KINDS}
    for source in sources:
        for key in source.sections:
            if key not in KINDS:
                problems.add(plugin_mark(source.plugin or source.origin),
                             f"register_types returned an unknown section '{key}'{did_you_mean(str(key), KINDS)}")
        for section in KINDS:
            parse_type_section(source.sections.get(section), section, source.plugin, problems, defined[section])
    for section in KINDS:
        resolve_types(defined[section], problems)
    check_property_types([t for types in defined.values() for t in types.values()], defined["data_types"], problems)
    return problems.items


def _marked(value: Any, mark: Any) -> Any:
    if type(value) in SCALAR_TYPES:
        return value
    if isinstance(value, Mapping):
        result = YDict()
        result.update({key: _marked(item, mark) for key, item in value.items()})
        result.mark = mark
        result.key_marks = result.value_marks = dict.fromkeys(result, mark)  # read only: one dict serves both
        return result
    if isinstance(value, (list, tuple)):
        items = YList()
        items.extend([_marked(item, mark) for item in value])
        items.mark = mark
        items.item_marks = [mark] * len(items)
        return items
    return value


def _plugin_of(file: str) -> str | None:
    """``<plugin NAME>`` -> ``NAME``: the plugin a problem's mark points into."""
    return file[len("<plugin "):-1] if file.startswith("<plugin ") and file.endswith(">") else None


class _PluginCaller:
    """Runs plugins' code in a daemon thread, each call bounded by ``timeout`` seconds.

    One thread serves every call until ``close()`` (starting one per plugin costs more
    than the checks it guards); a call that does not return in time is abandoned,
    thread and all, and the next call gets a fresh thread. A ``KeyboardInterrupt`` the
    plugin raises is its result; a real Ctrl-C reaches the main thread, which only
    waits here.
    """

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event] | None] | None = None

    def __call__(self, fn: Callable[[], Any]) -> tuple[bool, Any]:
        """``(True, result or the exception raised)``, or ``(False, None)`` on a timeout."""
        if self._jobs is None:
            self._jobs = queue.SimpleQueue()
            threading.Thread(target=self._serve, args=(self._jobs,), name="orchestrator-plugins",
                             daemon=True).start()
        box: list[Any] = []
        done = threading.Event()
        self._jobs.put((fn, box, done))
        if done.wait(self.timeout):
            return True, box[0]
        self._jobs = None  # that thread is stuck in the plugin: leave it, use a new one
        return False, None

    def close(self) -> None:
        """Let the thread end (a later call starts another)."""
        if self._jobs is not None:
            self._jobs.put(None)
            self._jobs = None

    @staticmethod
    def _serve(jobs: queue.SimpleQueue[tuple[Callable[[], Any], list[Any], threading.Event] | None]) -> None:
        while True:
            job = jobs.get()
            if job is None:
                return
            fn, box, done = job
            try:
                box.append(fn())
            except BaseException as exc:  # whatever a plugin raises is a load error, never the host's exit
                box.append(exc)
            done.set()


def _types_failure(exc: BaseException) -> str:
    if isinstance(exc, BlueprintError):
        return f"register_types returned invalid YAML: {exc}"
    if isinstance(exc, _BadResult):
        return str(exc)
    return f"register_types failed: {_describe(exc)}"


def _describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _version(dist: str) -> str | None:
    import importlib.metadata as md

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
