"""Cloudify's sections as ours: types, inputs, templates, outputs, scaling groups.

Every value keeps its mark (the translated mappings carry the marks of what they were
made from), so the core loader's problems point into the Cloudify files. What differs:

- types lose ``interfaces`` (kept aside for ``interfaces``); roots derive from ours;
  ``string`` means any scalar in Cloudify, so it constrains nothing here;
- a data-typed property whose fields all have defaults needs no value (Cloudify's
  implicit default);
- ``capabilities`` are outputs; ``instances.deploy`` and ``capabilities.scalable`` give
  instance counts; scaling groups become templates of their own (``groups``);
- what needs a Cloudify manager (cross-deployment functions, custom workflows, monitoring
  policies, manager-side input types) is refused with ``not supported:``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import attrs

from orchestrator.dsl.cloudify.groups import scaling_groups
from orchestrator.dsl.cloudify.interfaces import (
    AROUND,
    LIFECYCLE,
    OUR_LIFECYCLE,
    Operation,
    classify,
    refusal,
    template_interfaces,
    type_interfaces,
)
from orchestrator.dsl.cloudify.reader import Read, pack_data
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import YDict, YList, child_mark, key_mark, mark_of

PROPERTY_KEYS = ("type", "default", "required", "description", "constraints")
INPUT_KEYS = ("type", "default", "required", "description", "constraints", "display_label", "hidden")
TEMPLATE_KEYS = ("type", "properties", "relationships", "interfaces", "instances", "capabilities", "description")
RELATIONSHIP_KEYS = ("type", "target", "properties", "source_interfaces", "target_interfaces")
ANY_SCALAR = ("string", "textarea", "regex")  # Cloudify accepts any scalar for these
MANAGER_INPUT_TYPES = ("secret_key", "node_id", "node_type", "node_instance", "blueprint_id", "deployment_id",
                       "capability_value", "scaling_group", "operation_name", "tenant_id")
CROSS_DEPLOYMENT = {
    "get_capability": "it reads another deployment's capabilities",
    "get_environment_capability": "it reads the capabilities of the deployment's environment",
    "get_group_capability": "it reads capabilities of a group of deployments",
    "get_label": "it reads labels a Cloudify manager keeps",
    "get_operation_output": "operation outputs are not kept",
    "get_attributes_list": "it reads every instance's attributes",
    "get_attributes_dict": "it reads every instance's attributes",
    "get_nodes_by_type": "it needs a Cloudify manager",
}
ROOTS = {
    "node_types": "orchestrator.nodes.Root",
    "relationships": "orchestrator.relationships.depends_on",
}
RELATIONSHIP_BASES = {
    "cloudify.relationships.contained_in": "orchestrator.relationships.contained_in",
    "cloudify.relationships.connected_to": "orchestrator.relationships.connected_to",
}


@attrs.define
class TemplateInfo:
    """What a template says that our model keeps outside its properties."""

    hierarchy: list[str]  # Cloudify types, root first
    interfaces: dict[str, dict[str, Operation]]
    operation_inputs: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    disabled: set[str] = attrs.field(factory=set)


@attrs.define
class Translation:
    description: str
    sections: dict[str, YDict]
    templates: dict[str, TemplateInfo] = attrs.field(factory=dict)
    pack_plugins: dict[str, str] = attrs.field(factory=dict)  # plugin name in YAML -> pack name
    packs: list[Any] = attrs.field(factory=list)  # the packs imported, the base one included
    incomplete: bool = False  # an import was not available offline (``Read.incomplete``)

    def why_unsupported(self, hierarchy: list[Any]) -> str | None:
        """Why a pack refuses a type (its hierarchy, root first; declared or not), or None.

        The nearest type a pack maps or refuses decides: a blueprint's type derived from a
        mapped one runs, whatever the pack's globs say of its ancestors."""
        for type_name in reversed(hierarchy):
            if not isinstance(type_name, str):
                continue
            if any(type_name in p.mappings for p in self.packs):
                return None
            why = next((w for p in self.packs if (w := p.why_unsupported(type_name))), None)
            if why:
                return why
        return None


def translate(read: Read, problems: Problems) -> Translation:
    src = read.sections
    out = {name: _fresh(src.get(name)) for name in ("inputs", "data_types", "node_types", "relationships",
                                                    "node_templates", "outputs")}
    tr = Translation("", out)
    tr.packs = list(read.packs.values())
    tr.incomplete = read.incomplete
    for pack_name, pack in read.packs.items():
        if not pack.mappings:
            continue  # Cloudify's types.yaml: its plugins (script, agent, ...) are not ours to run
        plugins = pack_data(pack, Problems()).get("plugins") or {}
        for plugin in plugins:
            tr.pack_plugins[str(plugin)] = pack_name
    _refuse_manager_sections(src, problems)
    _refuse_functions(src, problems)
    implicit = _implicit_defaults(src["data_types"])
    for section in ("data_types", "node_types", "relationships"):
        for name, body in src[section].items():
            out[section][name] = _type(section, str(name), body, implicit, problems)
            if tr.incomplete and isinstance(body, dict) and _unknown(body.get("derived_from"), src[section]):
                out[section][name]["derived_from"] = RELATIONSHIP_BASES.get(str(name), ROOTS.get(section))
                if section == "data_types":
                    del out[section][name]["derived_from"]
            _marks(out[section], src[section], name)
    for name, body in src["inputs"].items():
        out["inputs"][name] = _input(str(name), body, problems)
        _marks(out["inputs"], src["inputs"], name)
    groups = scaling_groups(src, problems)
    for name, body in src["node_templates"].items():
        out["node_templates"][name] = _template(str(name), body, src, groups.counts.get(str(name)), tr, problems)
        groups.put_in_group(str(name), out["node_templates"][name])
        _marks(out["node_templates"], src["node_templates"], name)
    for name, unit in groups.templates.items():  # a scaling group's own template
        out["node_templates"][name] = unit
        out["node_templates"].key_marks[name] = out["node_templates"].value_marks[name] = unit.mark
    for section in ("outputs", "capabilities"):
        for name, body in src[section].items():
            if name in out["outputs"]:
                if body != out["outputs"][name]:  # the same value under both names is one output
                    problems.add(key_mark(src[section], name), f"not supported: capability '{shown(name)}' has "
                                 "an output's name and another value (orchestrator shows capabilities as outputs)")
                continue
            out["outputs"][name] = body
            _marks(out["outputs"], src[section], name)
    return tr


# ---------------------------------------------------------------- types


def _type(section: str, name: str, body: Any, implicit: set[str], problems: Problems) -> Any:
    if not isinstance(body, dict):
        return body  # the core loader says what is wrong
    result = _pick(body, ("derived_from", "properties", "description"))
    if section in ROOTS and body.get("derived_from") is None:
        result["derived_from"] = RELATIONSHIP_BASES.get(name, ROOTS[section])
    elif name in RELATIONSHIP_BASES:
        result["derived_from"] = RELATIONSHIP_BASES[name]
    props = body.get("properties")
    if isinstance(props, dict):
        result["properties"] = _properties(props, implicit, PROPERTY_KEYS)
    for key in body:
        if key not in ("derived_from", "properties", "description", "interfaces", "source_interfaces",
                       "target_interfaces"):
            problems.add(key_mark(body, key), f"unknown key '{shown(key)}' in {section[:-1].replace('_', ' ')} "
                         f"'{shown(name)}'")
    return result


def _properties(props: YDict, implicit: set[str], keys: tuple[str, ...]) -> YDict:
    result = _fresh(props)
    for pname, pdef in props.items():
        result[pname] = _property(pdef, implicit, keys) if isinstance(pdef, dict) else pdef
        _marks(result, props, pname)
    return result


def _property(pdef: YDict, implicit: set[str], keys: tuple[str, ...]) -> YDict:
    result = _pick(pdef, keys)
    ptype = pdef.get("type")
    if ptype in ANY_SCALAR:
        del result["type"]
    elif ptype in implicit and "default" not in pdef and pdef.get("required", True) is not False:
        result["default"] = {}  # Cloudify fills a data type whose fields all have defaults
    return result


def _implicit_defaults(data_types: Mapping[str, Any]) -> set[str]:
    """Data types every field of which (their parents' included) has a default or is optional."""
    def fields(name: str, depth: int = 0) -> Iterator[Any]:
        body = data_types.get(name)
        if not isinstance(body, dict) or depth > 50:
            return
        parent = body.get("derived_from")
        if isinstance(parent, str):
            yield from fields(parent, depth + 1)
        props = body.get("properties")
        if isinstance(props, dict):
            yield from props.values()

    return {str(n) for n in data_types
            if all(isinstance(f, dict) and ("default" in f or f.get("required") is False) for f in fields(str(n)))}


# ---------------------------------------------------------------- inputs


def _input(name: str, body: Any, problems: Problems) -> Any:
    if not isinstance(body, dict):
        return body
    result = _pick(body, INPUT_KEYS)
    itype = body.get("type")
    if itype in ANY_SCALAR:
        del result["type"]
    elif itype in MANAGER_INPUT_TYPES:
        problems.add(mark_of(body, "type"), f"not supported: input '{shown(name)}' of type '{itype}' (it names "
                     "something a Cloudify manager holds)")
        del result["type"]
        result.pop("constraints", None)  # filter_id, labels, tenants...: what the manager would look up
    return result


# ---------------------------------------------------------------- templates


def _template(name: str, body: Any, src: Mapping[str, YDict], group_count: int | None, tr: Translation,
              problems: Problems) -> Any:
    if not isinstance(body, dict):
        return body
    where = f"node template '{shown(name)}'"
    for key in body:
        if key not in TEMPLATE_KEYS:
            problems.add(key_mark(body, key), f"unknown key '{shown(key)}' in {where}{did_you_mean(key, TEMPLATE_KEYS)}")
    result = _pick(body, ("type", "properties", "description"))
    type_name = body.get("type")
    why = tr.why_unsupported(_hierarchy(type_name, src["node_types"]) or [type_name])
    if why:
        problems.add(mark_of(body, "type"), f"not supported: {where}: type '{type_name}' ({why})")
    if why or (tr.incomplete and _reaches_unknown(type_name, src["node_types"])):
        result["type"] = "cloudify.nodes.Root"  # checked no further: the problem above says why
        result.pop("properties", None)
    count = _instances(body, where, problems)
    if group_count is not None:
        count = (count if isinstance(count, int) else 1) * group_count
    if count is not None:
        result["instances"] = count
        result.value_marks["instances"] = mark_of(body, "capabilities" if "capabilities" in body else "instances")
    rels = body.get("relationships")
    if isinstance(rels, list):
        out = YList()
        out.mark, out.item_marks = rels.mark, list(rels.item_marks)
        for rel in rels:
            out.append(_relationship(rel, src, where, tr, problems) if isinstance(rel, dict) else rel)
            if isinstance(rel, dict):
                for key in rel:
                    if key not in RELATIONSHIP_KEYS:
                        problems.add(key_mark(rel, key), f"unknown key '{shown(key)}' in a relationship of {where}")
        result["relationships"] = out
        _marks(result, body, "relationships")
    elif rels is not None:
        result["relationships"] = rels
    hierarchy = _hierarchy(body.get("type"), src["node_types"])
    ifaces = template_interfaces(type_interfaces(src["node_types"].get(t) for t in hierarchy),
                                 body.get("interfaces"), where, problems, mark_of(body, "interfaces"))
    info = TemplateInfo(hierarchy, ifaces)
    _check_operations(info, where, tr, problems)
    if isinstance(rels, list):
        _check_relationship_operations(rels, src["relationships"], where, tr, problems)
    _check_agent(body, where, problems)
    tr.templates[name] = info
    return result


def _relationship(rel: YDict, src: Mapping[str, YDict], where: str, tr: Translation, problems: Problems) -> YDict:
    """A template's relationship; one of a type a pack refuses (or an unavailable import
    would have declared) is kept as a plain ``depends_on``, its problem said once."""
    result = _pick(rel, ("type", "target", "properties"))
    rtype = rel.get("type")
    why = tr.why_unsupported(_hierarchy(rtype, src["relationships"]) or [rtype])
    if why:
        problems.add(mark_of(rel, "type"), f"not supported: {where}: relationship type '{rtype}' ({why})")
    if why or (tr.incomplete and _reaches_unknown(rtype, src["relationships"])):
        result["type"] = "cloudify.relationships.depends_on"
        result.pop("properties", None)
    return result


def _unknown(type_name: Any, declared: Mapping[str, Any]) -> bool:
    return isinstance(type_name, str) and type_name not in declared


def _reaches_unknown(type_name: Any, declared: Mapping[str, Any]) -> bool:
    """Whether the type, or a type it derives from, is declared nowhere we read (an import that
    was not available may declare it: its properties are not known here)."""
    seen: set[str] = set()
    while isinstance(type_name, str) and type_name not in seen:
        if type_name not in declared:
            return True
        seen.add(type_name)
        body = declared[type_name]
        type_name = body.get("derived_from") if isinstance(body, dict) else None
    return False


def _instances(body: YDict, where: str, problems: Problems) -> Any:
    raw = body.get("instances")
    if raw is not None:
        if isinstance(raw, dict) and set(raw) <= {"deploy"}:
            return raw.get("deploy", 1)
        problems.add(mark_of(body, "instances"), f"{where}: instances must be {{deploy: COUNT}}")
        return None
    caps = body.get("capabilities")
    if caps is None:
        return None
    scalable = caps.get("scalable") if isinstance(caps, dict) else None
    props = scalable.get("properties") if isinstance(scalable, dict) else None
    if not isinstance(props, dict) or set(caps) - {"scalable"}:
        problems.add(mark_of(body, "capabilities"), f"{where}: capabilities must be "
                     "{scalable: {properties: {default_instances: COUNT}}}")
        return None
    return props.get("default_instances", 1)


def _hierarchy(type_name: Any, node_types: Mapping[str, Any]) -> list[str]:
    chain: list[str] = []
    while isinstance(type_name, str) and type_name in node_types and type_name not in chain:
        chain.append(type_name)
        body = node_types[type_name]
        type_name = body.get("derived_from") if isinstance(body, dict) else None
    return list(reversed(chain))


def _check_operations(info: TemplateInfo, where: str, tr: Translation, problems: Problems) -> None:
    """Refuse what cannot run; keep lifecycle inputs; note the lifecycle steps turned off."""
    for iname, ops in info.interfaces.items():
        for oname, op in ops.items():
            kind = classify(op, tr.pack_plugins)
            if kind in ("script", "inline", "plugin"):
                problems.add(op.mark, refusal(kind, iname, oname, op, where))
            elif kind == "pack" and iname == LIFECYCLE and oname in OUR_LIFECYCLE:
                if op.inputs:
                    info.operation_inputs[oname] = dict(op.inputs)
            elif kind == "noop" and iname == LIFECYCLE and oname in OUR_LIFECYCLE:
                info.disabled.add(oname)
            elif kind == "pack" and iname == LIFECYCLE and oname in AROUND:
                continue  # part of what the mapped type's hooks do


def _check_relationship_operations(rels: YList, rel_types: Mapping[str, Any], where: str, tr: Translation,
                                   problems: Problems) -> None:
    for rel in rels:
        if not isinstance(rel, dict):
            continue
        chain = [rel_types.get(t) for t in _hierarchy(rel.get("type"), rel_types)]
        for key in ("source_interfaces", "target_interfaces"):
            ifaces = template_interfaces(type_interfaces(chain, key), rel.get(key), where, problems, mark_of(rel, key))
            for iname, ops in ifaces.items():
                for oname, op in ops.items():
                    kind = classify(op, tr.pack_plugins)
                    if kind in ("script", "inline", "plugin"):
                        problems.add(op.mark, refusal(kind, iname, oname, op,
                                                      f"{where}: relationship to '{shown(rel.get('target'))}'"))


def _check_agent(body: YDict, where: str, problems: Problems) -> None:
    """Cloudify installs an agent on a host only to run tasks there; a template asking for
    one explicitly is refused (we install none)."""
    props = body.get("properties")
    if not isinstance(props, dict):
        return
    if props.get("install_agent") is True:
        problems.add(mark_of(props, "install_agent"), f"not supported: {where}: install_agent (orchestrator "
                     "installs no agents; tasks run where orchestrator runs)")
    agent = props.get("agent_config")
    method = agent.get("install_method") if isinstance(agent, dict) else None
    if method in ("remote", "init_script", "plugin", "provided"):
        problems.add(mark_of(agent, "install_method"), f"not supported: {where}: agent_config.install_method "
                     f"'{method}' (orchestrator installs no agents; use install_method: none)")


# ---------------------------------------------------------------- refusals


def _refuse_manager_sections(src: Mapping[str, YDict], problems: Problems) -> None:
    why = {
        "workflows": "custom workflows (orchestrator runs install, uninstall, update, heal, scale and plugin "
                     "operations)",
        "policy_types": "policy types (monitoring policies need a Cloudify manager)",
        "policy_triggers": "policy triggers (monitoring policies need a Cloudify manager)",
        "upload_resources": "upload_resources (plugins and DSL resources of a Cloudify manager)",
    }
    for section, reason in why.items():
        for name in src[section]:
            problems.add(key_mark(src[section], name), f"not supported: {section} entry '{shown(name)}': {reason}")
            break


def _refuse_functions(src: Mapping[str, YDict], problems: Problems) -> None:
    """Report each cross-deployment function once (an anchor's copies are one) and put
    ``None`` in its place, so the core loader finds nothing more to say about it."""
    seen: set[int] = set()
    for section in ("node_templates", "outputs", "capabilities", "inputs", "node_types", "relationships"):
        stack: list[tuple[Any, Mark]] = [(src[section], src[section].mark)]
        while stack:
            value, mark = stack.pop()
            if id(value) in seen:
                continue
            seen.add(id(value))
            items = list(value.items()) if isinstance(value, dict) else list(enumerate(value)) \
                if isinstance(value, list) else []
            for key, child in items:
                fn = next(iter(child)) if isinstance(child, dict) and len(child) == 1 else None
                if fn in CROSS_DEPLOYMENT:
                    if id(child) not in seen:
                        seen.add(id(child))
                        problems.add(key_mark(child, fn) if isinstance(child, YDict) else child_mark(value, key, mark),
                                     f"not supported: {fn} ({CROSS_DEPLOYMENT[fn]}; orchestrator deployments "
                                     "stand alone)")
                    value[key] = None
                elif isinstance(child, (dict, list)):
                    stack.append((child, child_mark(value, key, mark)))


# ---------------------------------------------------------------- marked copies


def _fresh(like: Any) -> YDict:
    result = YDict()
    if isinstance(like, YDict):
        result.mark = like.mark
    return result


def _pick(body: YDict, keys: tuple[str, ...]) -> YDict:
    result = _fresh(body)
    for key in keys:
        if key in body:
            result[key] = body[key]
            _marks(result, body, key)
    return result


def _marks(into: YDict, src: Any, key: Any) -> None:
    if isinstance(src, YDict):
        if key in src.key_marks:
            into.key_marks[key] = src.key_marks[key]
        if key in src.value_marks:
            into.value_marks[key] = src.value_marks[key]


__all__ = ["TemplateInfo", "Translation", "translate"]
