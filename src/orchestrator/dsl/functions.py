"""Intrinsic functions: their shapes, plan-time resolution, and the run-time walker.

``get_input``, ``get_property`` and ``concat`` are resolved when the blueprint is
planned. ``get_attribute`` needs runtime properties and ``get_secret`` must never be
stored, so both stay in the plan as function mappings and are resolved by the engine
through ``resolve_runtime`` each time a ``ctx`` is built.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from orchestrator.dsl.limits import MAX_DEPTH
from orchestrator.dsl.model import MISSING, Blueprint, NodeTemplate
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import SCALAR_TYPES, YDict, child_mark, mark_of, marked_copy

PLAN_TIME = ("get_input", "get_property", "concat")
RUN_TIME = ("get_attribute", "get_secret")
# Cloudify's, in Cloudify blueprints only (``Blueprint.dialect``): resolved when planning
# when their arguments are known then, else at run time like concat; get_sys at run time.
CLOUDIFY_ONLY = ("merge", "string_find", "string_replace", "string_split", "string_lower", "string_upper",
                 "get_sys")
FUNCTIONS = frozenset(PLAN_TIME + RUN_TIME + CLOUDIFY_ONLY)
SELF, SOURCE, TARGET = "SELF", "SOURCE", "TARGET"
# Intrinsic functions of Cloudify's and TOSCA's DSLs that ours does not have: a one-key
# mapping with one of these names is a call that would silently stay a literal mapping.
FOREIGN_FUNCTIONS = frozenset((
    "get_capability", "get_environment_capability", "get_group_capability", "get_sys", "get_label",
    "get_operation_output", "get_artifact", "get_nodes_by_type", "get_attributes_list",
    "get_attributes_dict", "get_secret_value", "token", "join", "concat_list", "evaluate",
))
NOT_IN_INPUTS = ("get_attribute", "get_property", "get_input")  # inputs are known before nodes and each other


def as_function(value: Any) -> tuple[str, Any] | None:
    """``(name, arguments)`` when ``value`` is a function call mapping, else ``None``."""
    if type(value) in (dict, YDict) and len(value) == 1:
        ((name, args),) = value.items()
        if name in FUNCTIONS:
            return name, args
    return None


def unknown_function(value: Any) -> str | None:
    """The name a one-key mapping seems to call when no such function exists, else ``None``.

    A mapping's key is taken for a function when it starts with ``get_``, is a function
    of Cloudify or TOSCA, or is close to one of ours (``concatt``); other one-key
    mappings (``{name: x}``) are data.
    """
    if type(value) not in (dict, YDict) or len(value) != 1:
        return None
    (name,) = value
    if not isinstance(name, str) or name in FUNCTIONS or len(name) > 40:
        return None
    if name.startswith("get_") or name in FOREIGN_FUNCTIONS:
        return name
    import difflib  # here: only a typo pays for importing it

    return name if difflib.get_close_matches(name, FUNCTIONS, n=1, cutoff=0.8) else None


OWN_FUNCTIONS = frozenset(PLAN_TIME + RUN_TIME)  # what our own dialect has


def unknown_function_message(name: str) -> str:
    hint = did_you_mean(name, OWN_FUNCTIONS) or f" (the functions are {', '.join(sorted(OWN_FUNCTIONS))})"
    return f"unknown function '{shown(name)}'{hint}"


def functions_in(value: Any, mark: Mark) -> Iterator[tuple[str, Mark]]:
    """Every function call (known, or unknown by ``unknown_function``) in a value, with its mark."""
    stack = [(value, mark)]
    while stack:
        value, mark = stack.pop()
        if isinstance(value, dict):
            name = as_function(value)
            name = name[0] if name is not None else unknown_function(value)
            if name is not None:
                yield name, child_mark(value, name, mark, value=False)
            stack.extend((v, child_mark(value, k, mark)) for k, v in value.items())
        elif isinstance(value, list):
            stack.extend((v, child_mark(value, i, mark)) for i, v in enumerate(value))


def has_runtime_function(value: Any) -> bool:
    if isinstance(value, dict):
        fn = as_function(value)
        if fn is not None and (fn[0] in RUN_TIME or fn[0] == "get_sys"):
            return True
        return any(has_runtime_function(v) for v in value.values())
    if isinstance(value, list):
        return any(has_runtime_function(v) for v in value)
    return False


def _path_args(args: Any) -> list[Any] | None:
    """A path argument: ``name`` or ``[name, key, index, ...]``."""
    if isinstance(args, str):
        return [args]
    if (isinstance(args, list) and args and isinstance(args[0], str)
            and all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args)):
        return list(args)
    return None


def walk_path(value: Any, path: list[Any]) -> Any:
    """Follow keys and indices; ``MISSING`` where the path does not exist."""
    for step in path:
        if (isinstance(value, dict) and step in value) or (isinstance(value, list) and isinstance(step, int) and -len(value) <= step < len(value)):
            value = value[step]
        else:
            return MISSING
    return value


def stringify(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


class PlanResolver:
    """Resolves plan-time functions in one blueprint, reporting misuse as problems."""

    def __init__(self, bp: Blueprint, problems: Problems) -> None:
        self.bp = bp
        self.problems = problems
        self._resolved: dict[tuple[str, str], Any] = {}
        self._stack: list[tuple[str, str]] = []
        # each function's method, looked up once (``resolve`` runs for every function in the blueprint)
        self._calls = {name: getattr(self, f"_fn_{name}") for name in FUNCTIONS if hasattr(self, f"_fn_{name}")}

    # -- entry points -------------------------------------------------------------

    def template_properties(self, template: NodeTemplate, schema_props: Mapping[str, Any]) -> dict[str, Any]:
        """The template's properties with defaults filled in and plan-time functions resolved."""
        result = {}
        for name in self.property_names(template, schema_props):
            result[name] = self.property_value(template, name)
        return result

    def property_names(self, template: NodeTemplate, schema_props: Mapping[str, Any]) -> list[str]:
        names = [n for n, p in schema_props.items() if n in template.properties or p.default is not MISSING]
        names.extend(n for n in template.properties if n not in schema_props)
        return names

    def property_value(self, template: NodeTemplate, name: str) -> Any:
        key = (template.name, name)
        if key in self._resolved:
            return self._resolved[key]
        if key in self._stack:
            cycle = " -> ".join(f"{t}.{p}" for t, p in [*self._stack[self._stack.index(key):], key])
            self.problems.add(mark_of(template.properties, name), f"get_property cycle: {cycle}")
            return None
        if len(self._stack) >= MAX_DEPTH:  # each step recurses: refuse before Python does
            self.problems.add(mark_of(template.properties, name),
                              f"get_property chain longer than {MAX_DEPTH} properties")
            return None
        if name in template.properties:
            raw = template.properties[name]
            if raw.__class__ in SCALAR_TYPES:  # nothing to resolve: no mark, no wording needed
                self._resolved[key] = raw
                return raw
            mark = mark_of(template.properties, name)
        else:
            prop = self.bp.node_types[template.type].properties.get(name) if template.type in self.bp.node_types else None
            if prop is None or prop.default is MISSING:
                return MISSING
            raw, mark = prop.default, prop.mark
        self._stack.append(key)
        try:
            value = self.resolve(raw, mark, template, f"node template '{template.name}': property '{name}'")
        finally:
            self._stack.pop()
        self._resolved[key] = value
        return value

    def resolve(self, value: Any, mark: Mark, template: NodeTemplate | None, where: str,
                allowed_entities: tuple[str, ...] = (SELF,)) -> Any:
        fn = as_function(value)
        if fn is not None:
            name, args = fn
            args_mark = mark_of(value, name)
            if name in CLOUDIFY_ONLY:
                if self.bp.dialect != "cloudify":
                    self.problems.add(child_mark(value, name, mark, value=False),
                                      f"{where}: {unknown_function_message(name)}")
                    return None
                return self._cloudify(name, args, args_mark, template, where, allowed_entities)
            return self._calls[name](args, args_mark, template, where, allowed_entities)
        unknown = unknown_function(value)
        if unknown is not None:
            self.problems.add(child_mark(value, unknown, mark, value=False), f"{where}: {unknown_function_message(unknown)}")
            return None
        if isinstance(value, dict):  # a copy that keeps the marks: nested problems point at nested values
            result = marked_copy(value, mark)
            for k, v in value.items():
                result[k] = (self.resolve(v, child_mark(value, k, mark), template, where, allowed_entities)
                             if isinstance(v, (dict, list)) else v)
            return result
        if isinstance(value, list):
            items = marked_copy(value, mark)
            for i, v in enumerate(value):
                items.append(self.resolve(v, child_mark(value, i, mark), template, where, allowed_entities)
                             if isinstance(v, (dict, list)) else v)
            return items
        return value

    # -- the functions ------------------------------------------------------------

    def _fn_get_input(self, args: Any, mark: Mark, template, where: str, _entities) -> Any:
        path = _path_args(args)
        if path is None:
            self.problems.add(mark, f"{where}: get_input takes an input name or [name, key, ...]")
            return None
        name = path[0]
        if name not in self.bp.inputs:
            self.problems.add(mark, f"{where}: get_input of undeclared input '{shown(name)}'{did_you_mean(name, self.bp.inputs)}")
            return None
        if name not in self.bp.input_values:
            return None  # a missing required input is reported by the input check
        value = walk_path(self.bp.input_values[name], path[1:])
        if value is MISSING:
            self.problems.add(mark, f"{where}: get_input: input '{shown(name)}' has no path {shown(path[1:])}")
            return None
        if isinstance(value, (dict, list)) and next(functions_in(value, mark), None) is not None:
            # An input's value may hold functions of its own (a Cloudify default such as
            # {concat: [{get_input: region}, b]}): they are evaluated where the input is used.
            return self.resolve(value, mark, template, where, _entities)
        return value

    def _fn_get_property(self, args: Any, mark: Mark, template, where: str, _entities) -> Any:
        if not (isinstance(args, list) and len(args) >= 2 and isinstance(args[0], str)
                and all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args[1:])):
            self.problems.add(mark, f"{where}: get_property takes [SELF or a node name, property, key, ...]")
            return None
        entity, prop, rest = args[0], args[1], list(args[2:])
        if entity == SELF:
            if template is None:
                self.problems.add(mark, f"{where}: get_property SELF is only valid inside a node template")
                return None
            target = template
        elif entity in self.bp.templates:
            target = self.bp.templates[entity]
        else:
            self.problems.add(mark, f"{where}: get_property of unknown node template '{shown(entity)}'"
                              f"{did_you_mean(entity, self.bp.templates)}")
            return None
        value = self.property_value(target, str(prop))
        if value is MISSING:
            ntype = self.bp.node_types.get(target.type)
            known = [*(ntype.properties if ntype else ()), *target.properties]
            self.problems.add(mark, f"{where}: get_property: node template '{shown(target.name)}' has no property "
                              f"'{shown(prop)}'{did_you_mean(str(prop), known)}")
            return None
        value = walk_path(value, rest)
        if value is MISSING:
            self.problems.add(mark, f"{where}: get_property: property '{shown(prop)}' of node template '{shown(target.name)}'"
                              f" has no path {shown(rest)}")
            return None
        return value

    def _fn_concat(self, args: Any, mark: Mark, template, where: str, entities) -> Any:
        if not isinstance(args, list):
            self.problems.add(mark, f"{where}: concat takes a list of values")
            return None
        parts = [self.resolve(a, child_mark(args, i, mark), template, where, entities)
                 if isinstance(a, (dict, list)) else a for i, a in enumerate(args)]
        if any(has_runtime_function(p) for p in parts):
            return {"concat": parts}
        return "".join(stringify(p) for p in parts)

    def _fn_get_attribute(self, args: Any, mark: Mark, template, where: str, entities) -> Any:
        ok = (isinstance(args, list) and len(args) >= 2 and isinstance(args[0], str)
              and all(isinstance(a, (str, int)) and not isinstance(a, bool) for a in args[1:]))
        if not ok:
            self.problems.add(mark, f"{where}: get_attribute takes [SELF or a node name, attribute, key, ...]")
            return None
        entity = args[0]
        if entity in (SELF, SOURCE, TARGET):
            if entity not in entities:
                self.problems.add(mark, f"{where}: get_attribute {entity} is not valid here"
                                  f" (use {' or '.join(entities) or 'a node name'})")
                return None
        elif entity not in self.bp.templates:
            self.problems.add(mark, f"{where}: get_attribute of unknown node template '{shown(entity)}'"
                              f"{did_you_mean(entity, self.bp.templates)}")
            return None
        return {"get_attribute": list(args)}

    def _cloudify(self, name: str, args: Any, mark: Mark, template: NodeTemplate | None, where: str,
                  entities: tuple[str, ...]) -> Any:
        if name == "get_sys":
            if args not in (["deployment", "id"], ["deployment", "name"], ["deployment", "blueprint"],
                            ["deployment", "owner"], ["tenant", "name"]):
                self.problems.add(mark, f"{where}: get_sys takes [deployment, id|name|blueprint|owner] or [tenant, name]")
                return None
            return {"get_sys": list(args)}
        resolved = self.resolve(args, mark, template, where, entities) if isinstance(args, (dict, list)) else args
        if has_runtime_function(resolved):
            return {name: resolved}
        try:
            return cloudify_function(name, resolved)
        except (TypeError, ValueError) as exc:
            self.problems.add(mark, f"{where}: {name}: {exc}")
            return None

    def _fn_get_secret(self, args: Any, mark: Mark, template, where: str, entities) -> Any:
        path = _path_args(args)
        if path is None and isinstance(args, (dict, list)):  # the name from a function: {get_input: which}
            before = len(self.problems)
            resolved = self.resolve(args, mark, template, where, entities)
            if len(self.problems) > before:
                return None
            if has_runtime_function(resolved):
                self.problems.add(mark, f"not supported: {where}: get_secret of a name known only at run time")
                return None
            path = _path_args(resolved)
        if path is None:
            self.problems.add(mark, f"{where}: get_secret takes a secret name or [name, key, ...]")
            return None
        self.bp.secret_names.add(path[0])
        self.bp.secret_marks.setdefault(path[0], mark)
        return {"get_secret": path if len(path) > 1 else path[0]}


def cloudify_function(name: str, args: Any) -> Any:
    """Cloudify's string and merge functions on known arguments (``ValueError`` says what is wrong)."""
    if name == "merge":
        if not isinstance(args, list) or not all(isinstance(a, dict) for a in args):
            raise ValueError("takes a list of mappings")
        merged: dict[str, Any] = {}
        for a in args:
            merged.update(a)
        return merged
    shapes = {"string_find": 2, "string_replace": 3, "string_split": 2, "string_lower": 1, "string_upper": 1}
    items = args if isinstance(args, list) else [args]
    if len(items) not in (shapes[name], 3 if name == "string_split" else shapes[name]):
        raise ValueError(f"takes {shapes[name]} argument(s)")
    text = stringify(items[0])
    if name == "string_lower":
        return text.lower()
    if name == "string_upper":
        return text.upper()
    if name == "string_find":
        return text.find(stringify(items[1]))
    if name == "string_replace":
        return text.replace(stringify(items[1]), stringify(items[2]))
    parts = text.split(stringify(items[1]))
    if len(items) == 3:
        if not isinstance(items[2], int) or isinstance(items[2], bool) or not -len(parts) <= items[2] < len(parts):
            raise ValueError(f"index {items[2]!r} is out of range")
        return parts[items[2]]
    return parts


class RuntimeLookup(Protocol):
    def get_attribute(self, args: list[Any]) -> Any: ...
    def get_secret(self, args: Any) -> Any: ...


def resolve_runtime(value: Any, lookup: RuntimeLookup) -> Any:
    """Resolve the run-time functions left in a planned value."""
    if isinstance(value, dict):
        fn = as_function(value)
        if fn is not None:
            name, args = fn
            if name == "get_attribute":
                return lookup.get_attribute(args)
            if name == "get_secret":
                return lookup.get_secret(args)
            if name == "concat":
                return "".join(stringify(resolve_runtime(a, lookup)) for a in args)
            if name == "get_sys":
                sys_lookup = getattr(lookup, "get_sys", None)
                return sys_lookup(args) if sys_lookup is not None else None
            if name in CLOUDIFY_ONLY:
                return cloudify_function(name, resolve_runtime(args, lookup))
        return {k: resolve_runtime(v, lookup) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve_runtime(v, lookup) for v in value]
    return value

