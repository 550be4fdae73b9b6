"""``Plugin``: a plugin object built from types and resource classes, hookimpls generated.

    plugin = Plugin(TYPES, {"hello.Directory": Directory, "hello.File": File,
                            "hello.relationships.file_in_directory": FileInDirectory})

with the entry point ``hello = "orchestrator_hello.plugin:plugin"``. For a node (or
relationship) of type T, the class of the nearest type of T's hierarchy in the mapping
runs, so a blueprint type derived from ``hello.File`` is a ``File`` too. A hookimpl is
generated for each hook some class implements, and only for those: the engine skips an
operation nothing implements (and records nothing for it). An implemented operation
on a type whose class lacks the method is a no-op. Plain hookimpls on a subclass of
``Plugin`` keep working next to the generated ones.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator import NonRecoverableError, hookimpl, hookspecs
from orchestrator.sdk.resources import Relationship, Resource

VALIDATE = "validate_node"
RUN_OPERATION = "run_operation"


def ctx_hooks() -> tuple[str, ...]:
    """Hooks taking exactly ``ctx``: the lifecycle hooks, and day-2 hooks as they are added."""
    names = []
    for name, fn in vars(hookspecs).items():
        if callable(fn) and hasattr(fn, "orchestrator_spec") and list(inspect.signature(fn).parameters) == ["ctx"]:
            names.append(name)
    return tuple(names)


class Plugin:
    """A plugin object: ``register_types`` returns ``types``; every routed hook is generated."""

    def __init__(self, types: Mapping[str, Any] | str | None = None,
                 classes: Mapping[str, type[Resource] | type[Relationship]] | None = None, *,
                 name: str | None = None) -> None:
        self.types = types
        self.classes = dict(classes or {})
        self.__name__ = name or sys._getframe(1).f_globals.get("__name__", "plugin")
        self._cache: dict[tuple[str, ...], Any] = {}
        for cls_name, cls in self.classes.items():
            if not (isinstance(cls, type) and issubclass(cls, (Resource, Relationship))):
                raise TypeError(f"{cls_name}: expected a Resource or Relationship subclass, got {cls!r}")
        defined = set(dir(type(self)))
        if types is not None and "register_types" not in defined:
            self.register_types = hookimpl(specname="register_types")(lambda: self.types)
        for hook in ctx_hooks():
            if hook == RUN_OPERATION:
                continue
            if hook not in defined and any(callable(getattr(c, hook, None)) for c in self.classes.values()):
                setattr(self, hook, hookimpl(specname=hook)(self._router(hook)))
        self.operations = _declared_operations(types)  # type -> its own custom operations' names
        if RUN_OPERATION not in defined and any(
                callable(getattr(cls, op, None)) for t, cls in self.classes.items() for op in self._operations_of(t)):
            self.run_operation = hookimpl(specname=RUN_OPERATION)(lambda ctx: self._run_operation(ctx))
        if VALIDATE not in defined and any(_validates(c) for c in self.classes.values()):
            self.validate_node = hookimpl(specname=VALIDATE)(lambda node: self._validate(node))

    def __repr__(self) -> str:
        return f"<orchestrator.sdk.Plugin {self.__name__}: {', '.join(self.classes) or 'no classes'}>"

    def class_for(self, hierarchy: Iterable[str]) -> Any | None:
        """The class of the nearest type of ``hierarchy`` (root first) that has one."""
        key = tuple(hierarchy)
        try:
            return self._cache[key]
        except KeyError:
            pass
        found = next((self.classes[t] for t in reversed(key) if t in self.classes), None)
        self._cache[key] = found
        return found

    def handles(self, hook: str, hierarchy: Iterable[str]) -> bool:
        """Whether the class of a type (``hierarchy``, root first) implements ``hook``."""
        cls = self.class_for(hierarchy)
        if hook == RUN_OPERATION:
            return cls is not None and any(callable(getattr(cls, op, None)) for t in hierarchy
                                           for op in self._operations_of(t))
        return cls is not None and callable(getattr(cls, hook, None))

    def _operations_of(self, type_name: str) -> list[str]:
        return self.operations.get(type_name, [])

    def _run_operation(self, ctx: Any) -> Any:
        """``run_operation``: the method named like the operation, on the type's class, called
        with the (checked) inputs as keyword arguments."""
        cls = self.class_for(ctx.node.type_hierarchy)
        method = getattr(cls, ctx.operation.name, None) if cls is not None else None
        if not callable(method):
            raise NonRecoverableError(f"{ctx.node.type} declares operation '{ctx.operation.name}' but its class "
                                      f"{getattr(cls, '__name__', None)} has no method of that name")
        return getattr(cls(ctx), ctx.operation.name)(**ctx.operation.inputs)

    def _router(self, hook: str) -> Callable[[Any], Any]:
        def route(ctx: Any) -> Any:
            rel = ctx.relationship if ctx.type == "relationship-instance" else None
            cls = self.class_for(rel.type_hierarchy if rel is not None else ctx.node.type_hierarchy)
            method = getattr(cls, hook, None) if cls is not None else None
            if method is None:
                return None
            return getattr(cls(ctx), hook)()

        route.__name__ = route.__qualname__ = hook
        return route

    def _validate(self, node: Any) -> list[Any]:
        cls = self.class_for(node.type_hierarchy)
        return list(cls.validate(node) or ()) if cls is not None else []


def _declared_operations(types: Mapping[str, Any] | str | None) -> dict[str, list[str]]:
    """Each node type's custom operations, as ``register_types`` declares them."""
    if isinstance(types, str):
        import yaml

        types = yaml.safe_load(types)
    node_types = (types or {}).get("node_types") if isinstance(types, Mapping) else None
    if not isinstance(node_types, Mapping):
        return {}
    return {name: list(body.get("operations") or {}) for name, body in node_types.items()
            if isinstance(body, Mapping) and isinstance(body.get("operations"), Mapping)}


def _validates(cls: type) -> bool:
    method = getattr(cls, "validate", None)
    return method is not None and getattr(method, "__func__", None) is not Resource.validate.__func__
