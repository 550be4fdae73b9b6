"""The operation context ``ctx`` handed to every lifecycle and relationship hook.

Shaped like Cloudify's ``ctx`` (node, instance, deployment, operation, source/target,
logger, resources) so it is easy to learn and easy to fake in tests. Runtime property
changes are merged key by key into the instance's stored properties, so two
relationship operations writing different keys of one target never lose each other's
work (Cloudify silently keeps the last writer's whole dict).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.errors import NonRecoverableError, OperationRetry
from orchestrator.state.records import loads_object


class Unresolved:
    """A property that could not be resolved (a secret not set): reading it fails clearly."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message

    def __repr__(self) -> str:
        return f"<unresolved: {self.message}>"


_READ_ONLY = ("ctx.node.properties is read-only, and so is what it holds; store state in "
              "ctx.instance.runtime_properties, or change a copy (copy.deepcopy)")


def _read_only(*args: Any, **kwargs: Any) -> None:
    raise NonRecoverableError(_READ_ONLY)


class FrozenDict(dict):
    """A mapping inside properties: a ``dict`` to read (and to ``json.dumps``), never to change.
    Changed in place, it would be changed for every other instance of the node too."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = clear = pop = popitem = setdefault = update = _read_only  # type: ignore[assignment]

    def copy(self) -> dict[str, Any]:  # type: ignore[override]
        return dict(self)

    def __deepcopy__(self, memo: dict) -> dict[str, Any]:  # a plain copy to change
        import copy
        return {k: copy.deepcopy(v, memo) for k, v in self.items()}

    def __reduce__(self) -> Any:
        return (dict, (dict(self),))


class FrozenList(list):
    """A list inside properties (see ``FrozenDict``)."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = clear = extend = insert = pop = remove = \
        reverse = sort = _read_only  # type: ignore[assignment]

    def copy(self) -> list[Any]:  # type: ignore[override]
        return list(self)

    def __deepcopy__(self, memo: dict) -> list[Any]:
        import copy
        return [copy.deepcopy(v, memo) for v in self]

    def __reduce__(self) -> Any:
        return (list, (list(self),))


def frozen(value: Any) -> Any:
    """``value`` with every dict and list in it read-only (new objects: the plan's stay as they are)."""
    kind = type(value)
    if kind is FrozenDict or kind is FrozenList or kind is str:
        return value
    if isinstance(value, dict):  # the blueprint's own mappings are dicts that know where they were written
        return FrozenDict({k: frozen(v) for k, v in value.items()})
    if isinstance(value, list):
        return FrozenList([frozen(v) for v in value])
    return value


class ImmutableProperties(FrozenDict):
    """Node properties: readable like a dict, never changed by a hook by accident."""

    __slots__ = ()

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ImmutableProperties:
        return cls({key: frozen(value) for key, value in values.items()})

    def __getitem__(self, key: str) -> Any:
        value = dict.__getitem__(self, key)
        if type(value) is Unresolved:
            raise NonRecoverableError(f"property '{key}': {value.message}")
        return value

    def get(self, key: str, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - self[key] checks Unresolved


class InstanceRecord:
    """The engine's authoritative copy of one instance: state, finished ops, runtime properties."""

    __slots__ = ("error", "id", "lock", "node", "ops", "runtime", "runtime_json", "state", "version")

    def __init__(self, id: str, node: str, state: str, ops: dict[str, str], runtime: dict[str, Any],
                 error: str | None = None, version: int | None = None) -> None:
        self.id = id
        self.node = node
        self.state = state
        self.ops = ops
        self.runtime = runtime
        self.runtime_json = json.dumps(runtime, sort_keys=True) if runtime else "{}"
        self.error = error  # the last failure, until an operation of the instance succeeds
        self.version = version  # the plan version it was last installed or updated with
        self.lock = threading.Lock()


class NodeContext:
    __slots__ = ("id", "properties", "type", "type_hierarchy")

    def __init__(self, id: str, type: str, type_hierarchy: list[str], properties: Mapping[str, Any]) -> None:
        self.id = id
        self.type = type
        self.type_hierarchy = type_hierarchy
        self.properties = properties

    def __repr__(self) -> str:
        return f"<node {self.id} ({self.type})>"


class InstanceContext:
    """``ctx.instance``: id and runtime properties, with ``update()`` and ``refresh()``."""

    __slots__ = ("_before", "_live", "_persist", "_record", "_relationships", "_returned", "_snapshot", "host_id",
                 "id", "runtime_properties")

    def __init__(self, record: InstanceRecord, host_id: str | None,
                 persist: Callable[[InstanceRecord], None],
                 relationships: Callable[[], list[RelationshipContext]] | None = None,
                 live: Callable[[], bool] | None = None) -> None:
        self.id = record.id
        self.host_id = host_id
        self._record = record
        self._persist = persist
        self._relationships = relationships
        self._live = live  # False once the operation timed out or was abandoned
        self._returned: str | None = None  # the hook that was given this context has returned
        with record.lock:
            self._snapshot = record.runtime_json
        self.runtime_properties: dict[str, Any] = loads_object(self._snapshot)
        self._before: dict[str, Any] = loads_object(self._snapshot)  # pristine copy: change detection

    @property
    def relationships(self) -> list[RelationshipContext]:
        """This instance's outgoing relationships, each with ``.type`` and ``.target``.

        Read targets' runtime properties here (e.g. a key pair's name, a host's
        address); change them only from relationship hooks.
        """
        if callable(self._relationships):
            self._relationships = self._relationships()
        return self._relationships or []

    def update(self) -> None:
        """Persist runtime property changes now (call it right after a side effect)."""
        if self._returned is not None:  # a thread the hook left behind: its operation is over
            raise NonRecoverableError(f"ctx.instance.update() of {self.id} after {self._returned} returned: nothing "
                                      f"is written (a thread a hook starts must end before the hook returns)")
        self._merge()

    def refresh(self) -> None:
        """Reload runtime properties from the state (after another operation changed them)."""
        with self._record.lock:
            self._snapshot = self._record.runtime_json
        self.runtime_properties.clear()
        self.runtime_properties.update(json.loads(self._snapshot))
        self._before = json.loads(self._snapshot)

    def _merge(self, persist: bool = True) -> bool:
        """Apply this context's changes key by key; True when something changed.

        With ``persist=False`` the caller writes ``record.runtime_json`` itself, in the
        same transaction as the operation's state change.
        """
        runtime = getattr(self, "runtime_properties", None)
        if not isinstance(runtime, dict):
            what = "deleted it" if runtime is None else f"made it a {type(runtime).__name__}"
            raise NonRecoverableError(f"ctx.instance.runtime_properties of {self.id} must stay a dict; the hook {what}")
        if runtime == self._before:
            return False
        if self._live is not None and not self._live():
            raise NonRecoverableError(f"the operation on {self.id} timed out or was abandoned; its runtime "
                                      f"property changes are discarded")
        try:
            current = json.dumps(runtime, sort_keys=True, allow_nan=False)
        except (TypeError, ValueError) as exc:  # NaN and infinities too: no JSON reader (nor PostgreSQL) takes them
            raise NonRecoverableError(
                f"runtime properties of {self.id} must be JSON-serializable: {exc}") from None
        before = self._before
        record = self._record
        with record.lock:
            merged = dict(record.runtime)
            for key in before.keys() - self.runtime_properties.keys():
                merged.pop(key, None)
            for key, value in self.runtime_properties.items():
                if key not in before or before[key] != value:
                    merged[key] = value
            record.runtime = merged
            record.runtime_json = json.dumps(merged, sort_keys=True)
            self._snapshot = current
            self._before = json.loads(current)
        if persist:
            self._persist(record)
        return True

    def __repr__(self) -> str:
        return f"<instance {self.id}>"


class EntityContext:
    """``ctx.source`` / ``ctx.target`` of a relationship operation."""

    __slots__ = ("instance", "node")

    def __init__(self, node: NodeContext, instance: InstanceContext) -> None:
        self.node = node
        self.instance = instance


class RelationshipContext:
    """One entry of ``ctx.instance.relationships``."""

    __slots__ = ("properties", "target", "type", "type_hierarchy")

    def __init__(self, type: str, type_hierarchy: list[str], properties: Mapping[str, Any],
                 target: EntityContext) -> None:
        self.type = type
        self.type_hierarchy = type_hierarchy
        self.properties = properties
        self.target = target

    def __repr__(self) -> str:
        return f"<relationship {self.type} -> {self.target.instance.id}>"


class DeploymentContext:
    __slots__ = ("id",)

    def __init__(self, id: str) -> None:
        self.id = id


class BlueprintContext:
    __slots__ = ("directory", "id", "path")

    def __init__(self, path: str) -> None:
        self.path = Path(path) if path else None
        self.directory = self.path.parent if self.path else None
        self.id = self.path.stem if self.path else ""


class OperationInfo:
    """``ctx.operation``: the running operation and its retry budget."""

    __slots__ = ("inputs", "max_retries", "name", "retry_number")

    def __init__(self, name: str, retry_number: int, max_retries: int,
                 inputs: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.retry_number = retry_number
        self.max_retries = max_retries
        # The operation's inputs, the hook's own to change: the plan's stay as they were for
        # every other instance (a nested one changed in place would be changed for them all).
        self.inputs = _copied(inputs) if inputs else {}

    def retry(self, message: str = "operation asked to be retried", after: float | None = None) -> None:
        """Ask the engine to run this operation again (after ``after`` seconds)."""
        raise OperationRetry(message, retry_after=after)


def _copied(value: Any) -> Any:
    """A copy of JSON-like data down to its scalars (a fraction of copy.deepcopy's cost)."""
    if isinstance(value, dict):
        return {k: _copied(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copied(v) for v in value]
    return value


class OperationLogger:
    """``ctx.logger``: the ``logging.Logger`` methods; every record becomes an event."""

    __slots__ = ("_emit", "level", "name")

    def __init__(self, name: str, emit: Callable[[str, str], None], level: int = logging.DEBUG) -> None:
        self.name = name
        self._emit = emit
        self.level = level

    def isEnabledFor(self, level: int) -> bool:
        return level >= self.level

    def log(self, level: int, msg: Any, *args: Any, exc_info: Any = None, **_: Any) -> None:
        if level < self.level:
            return
        text = str(msg) % args if args else str(msg)
        if exc_info:
            import traceback
            info = exc_info if isinstance(exc_info, tuple) else None
            if info is None and isinstance(exc_info, BaseException):
                info = (type(exc_info), exc_info, exc_info.__traceback__)
            text += "\n" + "".join(traceback.format_exception(*info)) if info else ""
        self._emit(logging.getLevelName(level).lower(), text)

    def _say(self, level: str, text: str) -> None:
        """A line at ``level`` ("info", "warning"...) as it is: what the hook printed."""
        self._emit(level, text)

    def debug(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.log(logging.DEBUG, msg, *args, **kw)

    def info(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.log(logging.INFO, msg, *args, **kw)

    def warning(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.log(logging.WARNING, msg, *args, **kw)

    warn = warning

    def error(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.log(logging.ERROR, msg, *args, **kw)

    def exception(self, msg: Any, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        if kw["exc_info"] is True:
            import sys
            kw["exc_info"] = sys.exc_info()
        self.log(logging.ERROR, msg, *args, **kw)

    def critical(self, msg: Any, *args: Any, **kw: Any) -> None:
        self.log(logging.CRITICAL, msg, *args, **kw)


class OperationContext:
    """``ctx``: everything one hook call may know and do (contract §3)."""

    __slots__ = ("_instance", "_node", "blueprint", "changes", "deployment", "logger", "operation", "plugin",
                 "relationship", "source", "target", "type")

    def __init__(self, *, type: str, deployment: DeploymentContext, blueprint: BlueprintContext,
                 operation: OperationInfo, logger: OperationLogger, plugin: str | None,
                 node: NodeContext | None = None, instance: InstanceContext | None = None,
                 source: EntityContext | None = None, target: EntityContext | None = None,
                 relationship: RelationshipContext | None = None,
                 changes: Mapping[str, tuple[Any, Any]] | None = None) -> None:
        self.type = type  # "node-instance" or "relationship-instance"
        self.deployment = deployment
        self.blueprint = blueprint
        self.operation = operation
        self.logger = logger
        self.plugin = plugin
        self._node = node
        self._instance = instance
        self.source = source
        self.target = target
        self.relationship = relationship  # in relationship hooks: .type, .type_hierarchy, .properties
        self.changes = changes or {}  # in update: property path -> (old, new)

    @property
    def node(self) -> NodeContext:
        if self._node is None:
            raise AttributeError("ctx.node is not set in a relationship operation: use ctx.source.node "
                                 "or ctx.target.node")
        return self._node

    @property
    def instance(self) -> InstanceContext:
        if self._instance is None:
            raise AttributeError("ctx.instance is not set in a relationship operation: use "
                                 "ctx.source.instance or ctx.target.instance")
        return self._instance

    def _hook_returned(self) -> None:
        """The hook returned (or raised): from now on ``update()`` refuses to write."""
        name = self.operation.name
        for inst in (self._instance, self.source and self.source.instance, self.target and self.target.instance):
            if inst is not None:
                inst._returned = name

    def describe(self) -> str:
        if self.source is not None and self.target is not None:
            return f"{self.source.instance.id}->{self.target.instance.id}"
        return self._instance.id if self._instance is not None else ""

    # -- resources shipped beside the blueprint ------------------------------------

    def _resource_path(self, path: str) -> Path:
        base = self.blueprint.directory
        if base is None:
            raise NonRecoverableError(f"resource '{path}': this deployment has no blueprint directory")
        full = (base / path).resolve()
        if not full.is_relative_to(base.resolve()):
            raise NonRecoverableError(f"resource '{path}' is outside the blueprint's directory")
        if not full.is_file():
            raise NonRecoverableError(f"resource '{path}' not found in {base}")
        return full

    def get_resource(self, path: str) -> bytes:
        """The content of a file shipped beside the blueprint."""
        return self._resource_path(path).read_bytes()

    def download_resource(self, path: str, target: str | None = None) -> str:
        """Copy a blueprint resource to ``target`` (default: a new temporary file); its path."""
        source = self._resource_path(path)
        if target is None:
            fd, target = tempfile.mkstemp(suffix=source.suffix, prefix="orchestrator-")
            import os
            os.close(fd)
        shutil.copyfile(source, target)
        return str(target)

    def get_resource_and_render(self, path: str, variables: Mapping[str, Any] | None = None) -> bytes:
        """A blueprint resource rendered as a Jinja2 template with ``variables`` and ``ctx``."""
        import jinja2

        template = jinja2.Template(self.get_resource(path).decode("utf-8"), undefined=jinja2.StrictUndefined,
                                   keep_trailing_newline=True)
        try:
            return template.render(ctx=self, **(variables or {})).encode("utf-8")
        except jinja2.TemplateError as exc:
            raise NonRecoverableError(f"rendering resource '{path}': {exc}") from None

    def download_resource_and_render(self, path: str, target: str | None = None,
                                     variables: Mapping[str, Any] | None = None) -> str:
        rendered = self.get_resource_and_render(path, variables)
        if target is None:
            fd, target = tempfile.mkstemp(prefix="orchestrator-")
            import os
            os.close(fd)
        Path(target).write_bytes(rendered)
        return str(target)

    def __repr__(self) -> str:
        return f"<ctx {self.operation.name} {self.describe()}>"
