"""Running Cloudify types as plugin types: the packs' ``TypeMapping``s applied to a loaded blueprint.

After the core loader checked a template against its Cloudify type, the pack that
declared the type turns its properties (and lifecycle inputs) into the properties of
one of the plugin's own types, which are checked in turn; the template then routes to
that plugin exactly as if the blueprint had named its type. Relationships follow (an
elastic IP that ``depends_on`` an instance is associated with it), and ``get_attribute``
of a Cloudify runtime property reads the one the plugin sets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.cloudify import CloudifyPack, MappingError, PackNode, TypeMapping
from orchestrator.dsl.cloudify.base_pack import BASE_PACK
from orchestrator.dsl.cloudify.reader import Read
from orchestrator.dsl.cloudify.translate import Translation
from orchestrator.dsl.functions import SELF, SOURCE, TARGET, as_function, has_runtime_function
from orchestrator.dsl.model import MISSING, Blueprint, NodeTemplate
from orchestrator.dsl.problems import Mark, Problems, shown
from orchestrator.dsl.schema import ValueChecker, fill_defaults
from orchestrator.dsl.yaml_source import child_mark


def apply_mappings(bp: Blueprint, read: Read, tr: Translation, problems: Problems) -> None:
    packs = [BASE_PACK, *read.packs.values()]
    mappings: dict[str, tuple[CloudifyPack, TypeMapping]] = {}
    for pack in packs:
        for type_name, mapping in pack.mappings.items():
            mappings[type_name] = (pack, mapping)
    _refuse_unsupported(bp, packs, mappings, problems)
    if problems:
        return
    original = {name: list(t.hierarchy) for name, t in bp.templates.items()}
    node_maps: dict[str, TypeMapping] = {}
    checker = ValueChecker(bp.data_types, problems)
    for name, t in bp.templates.items():
        info = tr.templates.get(name)
        found = next((mappings[h] for h in reversed(t.hierarchy) if h in mappings), None)
        if found is None:
            continue
        pack, mapping = found
        if _map_node(bp, t, pack, mapping, t.operation_inputs, checker, problems):
            node_maps[name] = mapping
            t.disabled = frozenset(info.disabled) if info else frozenset()
    for name, t in bp.templates.items():
        for rel in t.relationships:
            _map_relationship(bp, rel, node_maps.get(name), original.get(rel.target, []), mappings)
    attributes = {name: m.attributes for name, m in node_maps.items() if m.attributes}
    if attributes:
        _rename_attributes(bp, attributes)


def _refuse_unsupported(bp: Blueprint, packs: list[CloudifyPack], mappings: Mapping[str, Any],
                        problems: Problems) -> None:
    for t in bp.templates.values():
        if any(h in mappings for h in t.hierarchy):
            continue
        for type_name in reversed(t.hierarchy):
            why = next((w for p in packs if (w := p.why_unsupported(type_name))), None)
            if why:
                problems.add(t.mark,
                             f"not supported: node template '{shown(t.name)}': type '{type_name}' ({why})")
                break
        for rel in t.relationships:
            if any(h in mappings for h in rel.hierarchy):
                continue
            for type_name in reversed(rel.hierarchy):
                why = next((w for p in packs if (w := p.why_unsupported(type_name))), None)
                if why:
                    problems.add(rel.mark, f"not supported: node template '{shown(t.name)}': relationship type "
                                 f"'{type_name}' ({why})")
                    break


def _map_node(bp: Blueprint, t: NodeTemplate, pack: CloudifyPack, mapping: TypeMapping,
              operation_inputs: Mapping[str, Mapping[str, Any]], checker: ValueChecker, problems: Problems) -> bool:
    where = f"node template '{shown(t.name)}'"
    target = bp.node_types.get(mapping.target)
    if target is None or not target.hierarchy:
        problems.add(t.mark, f"not available: {where}: the {pack.name} pack runs '{t.type}' as "
                     f"'{mapping.target}', which no installed plugin registers")
        return False
    node = PackNode(t.name, t.type, tuple(t.hierarchy), dict(t.values), operation_inputs)
    try:
        if mapping.properties is None:
            values = {k: v for k, v in t.values.items() if k in target.properties}
        else:
            values = dict(mapping.properties(node))
    except MappingError as exc:
        mark = _path_mark(t, exc.path) if exc.path else t.mark
        for prefix in ("not supported: ", "not available offline: "):  # the refusal's words lead the line
            if exc.message.startswith(prefix):
                problems.add(mark, f"{prefix}{where}: {exc.message[len(prefix):]}")
                break
        else:
            problems.add(mark, f"{where}: {exc.message}")
        return False
    except Exception as exc:  # a pack's bug is the template's problem, never a traceback
        problems.add(t.mark, f"{where}: the {pack.name} pack failed to map it: {type(exc).__name__}: {exc}")
        return False
    label = f"{where} (run as '{mapping.target}')"
    before = len(problems)
    for key in values:
        if key not in target.properties:
            problems.add(t.mark, f"{label}: the {pack.name} pack gives unknown property '{shown(key)}'")
    for pname, prop in target.properties.items():
        if pname in values:
            checker.check_property(prop, values[pname], t.mark, f"{label}: property '{pname}'")
        elif prop.default is not MISSING:
            values[pname] = prop.default
        elif prop.required:
            problems.add(t.mark, f"{label}: missing required property '{pname}'")
        if pname in values:
            values[pname] = fill_defaults(prop, values[pname], bp.data_types)
    if len(problems) > before:
        return False
    cloudify_names = [h for h in t.hierarchy if h not in target.hierarchy and not h.startswith("orchestrator.")]
    t.type, t.owner = mapping.target, target.owner
    t.hierarchy = [*target.hierarchy, *cloudify_names]
    t.values = values
    t.runtime_paths = frozenset(k for k, v in values.items() if has_runtime_function(v))
    return True


def _path_mark(t: NodeTemplate, path: tuple[str | int, ...]) -> Mark:
    value: Any = t.properties
    mark: Mark = t.mark
    for step in path:
        present = (step in value) if isinstance(value, dict) else (
            isinstance(value, list) and isinstance(step, int) and 0 <= step < len(value))
        if not present:
            break  # not written in the template (a default, an operation input): the template's mark
        mark = child_mark(value, step, mark)
        value = value[step]
    return mark


def _map_relationship(bp: Blueprint, rel: Any, source_map: TypeMapping | None, target_hierarchy: list[str],
                      mappings: Mapping[str, tuple[CloudifyPack, TypeMapping]]) -> None:
    chosen = None
    if source_map is not None:
        chosen = next((source_map.relationships[h] for h in reversed(target_hierarchy)
                       if h in source_map.relationships), None)
    if chosen is None:
        found = next((mappings[h] for h in reversed(rel.hierarchy) if h in mappings), None)
        chosen = found[1].target if found else None
    rtype = bp.relationship_types.get(chosen) if chosen else None
    if rtype is None or not rtype.hierarchy:
        return
    was_contained = rel.is_contained_in
    old = (rel.type, rel.hierarchy, rel.owner, rel.values)
    rel.type, rel.owner = rtype.name, rtype.owner
    rel.hierarchy = [*rtype.hierarchy, *(h for h in old[1] if not h.startswith("orchestrator."))]
    rel.values = {k: v for k, v in rel.values.items() if k in rtype.properties}
    if rel.is_contained_in != was_contained:  # a pack must not change what hosts what
        rel.type, rel.hierarchy, rel.owner, rel.values = old


def _rename_attributes(bp: Blueprint, attributes: Mapping[str, Mapping[str, str]]) -> None:
    """``get_attribute`` of a Cloudify runtime property reads the one the plugin sets."""
    for t in bp.templates.values():
        t.values = _renamed(t.values, attributes, {SELF: t.name})
        t.operation_inputs = _renamed(t.operation_inputs, attributes, {SELF: t.name})
        for rel in t.relationships:
            rel.values = _renamed(rel.values, attributes, {SOURCE: t.name, TARGET: rel.target})
    for out in bp.outputs.values():
        out.value = _renamed(out.value, attributes, {})


def _renamed(value: Any, attributes: Mapping[str, Mapping[str, str]], entities: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        fn = as_function(value)
        if fn is not None and fn[0] == "get_attribute" and isinstance(fn[1], list) and len(fn[1]) >= 2:
            entity, attr, *rest = fn[1]
            node = entities.get(entity, entity)
            new = attributes.get(node, {}).get(attr) if isinstance(attr, str) else None
            return {"get_attribute": [entity, new or attr, *rest]}
        return {k: _renamed(v, attributes, entities) for k, v in value.items()}
    if isinstance(value, list):
        return [_renamed(v, attributes, entities) for v in value]
    return value


__all__ = ["apply_mappings"]
