"""Type definitions from plugins and blueprints: inheritance, merged schemas, owners.

A type's *owner* is the plugin whose hooks run for its nodes: the plugin that
registered it, or for a type a blueprint derives, the owner of its nearest registered
ancestor (contract §2).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.dsl.model import OperationDef, PropertyDef, TypeDef
from orchestrator.dsl.problems import Mark, Pending, Problems, did_you_mean, shown
from orchestrator.dsl.schema import PRIMITIVE_TYPES, description_of, parse_property_defs
from orchestrator.dsl.yaml_source import YDict, key_mark, mark_of
from orchestrator.record import Record

TYPE_KEYS = ("derived_from", "properties", "description", "operations")
OPERATION_KEYS = ("description", "inputs")
KINDS = {"node_types": "node type", "relationships": "relationship type", "data_types": "data type"}


class TypeSource(Record):
    """Type definitions from one origin: a plugin's ``register_types`` or a blueprint file."""

    __slots__ = ("origin", "sections", "plugin")

    def __init__(self, origin: str, sections: Mapping[str, Any], plugin: str | None = None) -> None:
        self.origin = origin  # plugin name, or None-like "" for blueprints
        self.sections = sections  # {"node_types": {...}, "relationships": {...}, "data_types": {...}}
        self.plugin = plugin


def parse_type_section(
    raw: Any, section: str, plugin: str | None, problems: Problems, defined: dict[str, TypeDef]
) -> None:
    """Add the types of one section of one source into ``defined`` (name -> TypeDef)."""
    kind = KINDS[section]
    if raw is None:
        return
    if not isinstance(raw, dict):
        problems.add(mark_of(raw), f"{section} must be a mapping of type name to definition")
        return
    for name, body in raw.items():
        name = str(name)
        mark = plugin_mark(plugin) if plugin and not isinstance(raw, YDict) else key_mark(raw, name)
        if body is None:
            body = {}
        if not isinstance(body, dict):
            problems.add(mark, f"{kind} '{shown(name)}' must be a mapping")
            continue
        for key in body:
            if key not in TYPE_KEYS:
                problems.add(
                    key_mark(body, key),
                    f"unknown key '{shown(key)}' in {kind} '{shown(name)}'{did_you_mean(key, TYPE_KEYS)}",
                )
        description_of(body, f"{kind} '{shown(name)}'", problems)
        parent = body.get("derived_from")
        if parent is not None and not isinstance(parent, str):
            problems.add(mark_of(body, "derived_from"), f"{kind} '{shown(name)}': derived_from must be a type name")
            parent = None
        props = parse_property_defs(body.get("properties"), mark_of(body, "properties"), "property", problems,
                                    owner=f"{kind} '{shown(name)}'")
        new = TypeDef(kind, name, parent, props, mark, body, plugin=plugin)
        if "operations" in body:
            if plugin is None:
                problems.add(key_mark(body, "operations"), f"{kind} '{shown(name)}': operations are declared by the "
                             "plugin that runs them (in register_types), not in a blueprint")
            elif section != "node_types":
                problems.add(key_mark(body, "operations"), f"{kind} '{shown(name)}': only node types have operations")
            else:
                new.own_operations = parse_operations(body["operations"], mark_of(body, "operations"),
                                                      f"{kind} '{shown(name)}'", problems)
        old = defined.get(name)
        if old is not None:
            if section == "data_types" and old.plugin and plugin and old.raw == body:
                continue  # plugins of one distribution may share a data type, if identical
            if old.plugin and plugin and old.plugin != plugin:
                problems.add(mark, f"{kind} '{shown(name)}' is registered by two plugins: '{shown(old.plugin)}' and '{shown(plugin)}'")
            elif old.plugin and not plugin:
                problems.add(mark, f"{kind} '{shown(name)}' is already registered by plugin '{shown(old.plugin)}'")
            elif old.raw != body:
                problems.add(mark, f"{kind} '{shown(name)}' is defined differently at {old.mark}")
                problems.inexact |= isinstance(old.mark, Pending)
            continue
        defined[name] = new


def parse_operations(raw: Any, mark: Mark, owner: str, problems: Problems) -> dict[str, OperationDef]:
    """``operations: {NAME: {description: ..., inputs: {NAME: property definition}}}``."""
    if not isinstance(raw, dict):
        problems.add(mark, f"{owner}: operations must be a mapping of operation name to its definition")
        return {}
    result = {}
    for name, body in raw.items():
        name = str(name)
        where = f"{owner}: operation '{shown(name)}'"
        omark = key_mark(raw, name)
        if not re.fullmatch(r"[A-Za-z_][\w-]*", name):
            problems.add(omark, f"{where}: an operation name is a word (letters, digits, _ and -)")
            continue
        if name in RESERVED_OPERATIONS:
            problems.add(omark, f"{where}: {name} is a lifecycle operation, not a custom one")
            continue
        body = {} if body is None else body
        if not isinstance(body, dict):
            problems.add(omark, f"{where} must be a mapping (description, inputs)")
            continue
        for key in body:
            if key not in OPERATION_KEYS:
                problems.add(key_mark(body, key), f"unknown key '{shown(key)}' in {where}{did_you_mean(key, OPERATION_KEYS)}")
        inputs = parse_property_defs(body.get("inputs"), mark_of(body, "inputs"), "input", problems, owner=where)
        result[name] = OperationDef(name, description_of(body, where, problems), inputs, omark)
    return result


RESERVED_OPERATIONS = ("create", "configure", "start", "stop", "delete", "update", "check_drift",
                       "preconfigure", "postconfigure", "establish", "unlink")


def resolve_types(defined: dict[str, TypeDef], problems: Problems) -> None:
    """Fill hierarchy, merged properties and owner; report unknown parents and cycles.

    Iterative: a generated chain of thousands of ``derived_from`` must not recurse.
    """
    done: set[str] = set()
    for start in list(defined.values()):
        chain: list[TypeDef] = []  # start first, then its parents, all unresolved
        on_chain: set[str] = set()
        t: TypeDef | None = start
        ok = True
        while t is not None and t.name not in done:
            if t.name in on_chain:
                names = [c.name for c in chain]
                cycle = " -> ".join([*names[names.index(t.name):], t.name])
                problems.add(t.mark, f"{t.kind} '{shown(t.name)}' derives from itself: {cycle}")
                ok = False
                break
            chain.append(t)
            on_chain.add(t.name)
            if t.derived_from is None:
                t = None
                break
            parent = defined.get(t.derived_from)
            if parent is None:
                problems.add(
                    mark_of(t.raw, "derived_from"),
                    f"{t.kind} '{shown(t.name)}' derives from unknown {t.kind} '{shown(t.derived_from)}'"
                    # never itself, nor a type deriving from the same missing one: neither can be its parent
                    f"{did_you_mean(t.derived_from, [n for n, d in defined.items() if d.derived_from != t.derived_from])}",
                )
                ok = False
                break
            t = parent
        if t is not None and t.name in done and not t.hierarchy:
            ok = False  # an ancestor that failed: so do its descendants
        for c in reversed(chain):
            done.add(c.name)
            if not ok:
                continue
            parent = defined[c.derived_from] if c.derived_from is not None else None
            if parent is None:
                c.hierarchy, c.properties, c.owner = [c.name], dict(c.own_properties), c.plugin
                c.operations = dict(c.own_operations)
            else:
                c.hierarchy = [*parent.hierarchy, c.name]
                c.properties = merge_properties(parent.properties, c.own_properties)
                c.owner = c.plugin or parent.owner
                c.operations = {**parent.operations, **c.own_operations}


def check_data_types(data_types: Mapping[str, TypeDef], problems: Problems) -> None:
    """No data type is named like a built-in type, and none contains itself.

    A data type whose field has its own type (directly or through others, by ``type``
    or ``entry_schema``) has no finite value with its defaults filled in. Each cycle is
    reported at the field that closes it, and that field's type is dropped so later
    checks terminate.
    """
    for t in data_types.values():
        if t.name in PRIMITIVE_TYPES:
            problems.add(t.mark, f"data type '{shown(t.name)}' has the name of a built-in type"
                         f" ({', '.join(PRIMITIVE_TYPES)})")
    state: dict[str, int] = {}  # 1 on the DFS path, 2 finished
    for root in data_types:
        if root in state:
            continue
        path = [root]
        stack = [iter(_field_edges(data_types[root], data_types))]
        state[root] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            field, target = step
            if state.get(target) == 1:
                cycle = " -> ".join([*path[path.index(target):], target])
                key = "type" if field.type == target else "entry_schema"
                where = mark_of(field.raw, key) if isinstance(field.raw, dict) and key in field.raw else field.mark
                problems.add(where, f"data type cycle: {cycle}")
                if field.type == target:
                    field.type = None
                if field.entry_schema == target:
                    field.entry_schema = None
            elif target not in state:
                state[target] = 1
                path.append(target)
                stack.append(iter(_field_edges(data_types[target], data_types)))


def _field_edges(t: TypeDef, data_types: Mapping[str, TypeDef]) -> Iterable[tuple[PropertyDef, str]]:
    for field in t.properties.values():
        for name in (field.type, field.entry_schema):
            if name in data_types and name not in PRIMITIVE_TYPES:
                yield field, name


def merge_properties(parent: Mapping[str, PropertyDef], own: Mapping[str, PropertyDef]) -> dict[str, PropertyDef]:
    """A child's property definition overrides only the keys it states (e.g. a new default)."""
    merged = dict(parent)
    for name, prop in own.items():
        base = parent.get(name)
        if base is None or not isinstance(prop.raw, dict):
            merged[name] = prop
            continue
        fields = {"type": "type", "required": "required", "default": "default",
                  "description": "description", "constraints": "constraints", "entry_schema": "entry_schema"}
        values = {attr: getattr(prop if key in prop.raw else base, attr) for key, attr in fields.items()}
        merged[name] = PropertyDef(name=name, mark=prop.mark, raw=prop.raw, **values)
    return merged


def check_property_types(types: Iterable[TypeDef], data_types: Mapping[str, TypeDef], problems: Problems) -> None:
    """Every property's ``type`` and ``entry_schema`` names a primitive or a data type."""
    for t in types:
        inputs = [(f"operation '{shown(o.name)}': input", p) for o in t.own_operations.values() for p in o.inputs.values()]
        for what, prop in [*(("property", p) for p in t.own_properties.values()), *inputs]:
            for key, name in (("type", prop.type), ("entry_schema", prop.entry_schema)):
                if name is not None and name not in PRIMITIVE_TYPES and name not in data_types:
                    where = mark_of(prop.raw, key) if isinstance(prop.raw, dict) else prop.mark
                    if key == "entry_schema" and isinstance(prop.raw, dict) and isinstance(prop.raw[key], dict):
                        where = mark_of(prop.raw[key], "type")  # the {type: NAME} form
                    problems.add(
                        where,
                        f"{t.kind} '{shown(t.name)}': {what} '{shown(prop.name)}' has unknown type '{shown(name)}'"
                        f"{did_you_mean(name, [*PRIMITIVE_TYPES, *data_types])}",
                    )


def plugin_mark(plugin: str) -> Mark:
    return Mark(f"<plugin {plugin}>", 1, 1)
