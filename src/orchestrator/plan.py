"""Node and relationship instances, the dependency graph between them, and install waves.

Instance ids are ``<template>_<n>``. An id never changes meaning and is never reused in
a deployment: planned again against the deployment's previous plan, every template keeps
its instances on the same hosts (the oldest first), new instances take the next unused
number of their template, and removed ones leave theirs unused. A plan is stored as JSON
with the deployment: uninstall and resume need no blueprint files.
"""

from __future__ import annotations

import graphlib
import json
from collections.abc import Set
from typing import Any

from orchestrator.dsl.model import Blueprint, NodeTemplate
from orchestrator.errors import DamagedValue
from orchestrator.levels import levels
from orchestrator.record import Record


class PlannedNode(Record):
    """What every instance of one template shares: type, routing owner, properties."""

    __slots__ = ("name", "type", "hierarchy", "owner", "properties",
                 "runtime_paths", "instances", "operation_timeout", "replace_on_change", "disabled", "operation_inputs")

    def __init__(self, name: str, type: str, hierarchy: list[str], owner: str | None, properties: dict[str, Any],
                 runtime_paths: list[str], instances: list[str] | None = None, operation_timeout: float | None = None,
                 replace_on_change: list[str] | None = None, disabled: list[str] | None = None,
                 operation_inputs: dict[str, dict[str, Any]] | None = None) -> None:
        self.name = name
        self.type = type
        self.hierarchy = hierarchy
        self.owner = owner
        self.properties = properties
        self.runtime_paths = runtime_paths
        self.instances = [] if instances is None else instances
        self.operation_timeout = operation_timeout  # seconds per hook call; None: the execution's default
        self.replace_on_change = [] if replace_on_change is None else replace_on_change  # not updatable in place
        self.disabled = [] if disabled is None else disabled  # lifecycle operations not run (Cloudify ``op: {}``)
        self.operation_inputs = {} if operation_inputs is None else operation_inputs  # ctx.operation.inputs per op


class PlannedRelationship(Record):
    __slots__ = ("type", "hierarchy", "owner", "target_node", "target_id", "properties")

    def __init__(self, type: str, hierarchy: list[str], owner: str | None, target_node: str, target_id: str,
                 properties: dict[str, Any]) -> None:
        self.type = type
        self.hierarchy = hierarchy
        self.owner = owner
        self.target_node = target_node
        self.target_id = target_id
        self.properties = properties


class PlannedInstance(Record):
    __slots__ = ("id", "node", "host_id", "relationships", "ancestors")

    def __init__(self, id: str, node: str, host_id: str | None, relationships: list[PlannedRelationship],
                 ancestors: dict[str, str] | None = None) -> None:
        self.id = id
        self.node = node
        self.host_id = host_id
        self.relationships = relationships
        self.ancestors = {} if ancestors is None else ancestors  # host template -> host instance id

    @property
    def targets(self) -> list[str]:
        return [r.target_id for r in self.relationships]


def relationship_keys(inst: PlannedInstance) -> list[str]:
    """How an instance's records name each of its relationships: ``target_id/type``.

    Keys survive a change of the blueprint that adds or removes other relationships (an
    index would not), so an update knows which relationship hooks already ran.
    """
    keys: list[str] = []
    for rel in inst.relationships:
        key = f"{rel.target_id}/{rel.type}"
        if key in keys:  # the same relationship twice: told apart by their order
            key = f"{key}#{keys.count(key) + sum(k.startswith(key + '#') for k in keys) + 1}"
        keys.append(key)
    return keys


class Plan(Record):
    __slots__ = ("nodes", "instances", "outputs", "blueprint_path", "next_ids")

    def __init__(self, nodes: dict[str, PlannedNode], instances: dict[str, PlannedInstance], outputs: dict[str, Any],
                 blueprint_path: str = "", next_ids: dict[str, int] | None = None) -> None:
        self.nodes = nodes
        self.instances = instances
        self.outputs = outputs
        self.blueprint_path = blueprint_path
        self.next_ids = {} if next_ids is None else next_ids  # per template: the next unused instance number

    # -- graph --------------------------------------------------------------------

    def waves(self) -> list[list[str]]:
        """Generations of instances: every instance comes after all of its targets (wave n: the
        longest chain of targets is n long), in ``graphlib``'s static order (``levels``)."""
        waves, count = levels((inst.id, inst.targets) for inst in self.instances.values())
        if sum(map(len, waves)) != count:
            raise graphlib.CycleError("the plan's instances depend on each other in a cycle")
        return waves

    def dependents(self) -> dict[str, list[str]]:
        """Reverse edges: target id -> ids of instances with a relationship to it."""
        result: dict[str, list[str]] = {iid: [] for iid in self.instances}
        for inst in self.instances.values():
            for t in dict.fromkeys(inst.targets):
                result[t].append(inst.id)
        return result

    def structure_hash(self) -> str:
        """Changes when instances or relationships change, not when properties do."""
        import hashlib  # here: importing it costs every plan ~2 ms

        h = hashlib.sha256()
        for inst in self.instances.values():
            h.update(f"{inst.id}|{inst.node}|{self.nodes[inst.node].type}|".encode())
            for r in inst.relationships:
                h.update(f"{r.type}>{r.target_id};".encode())
        return h.hexdigest()

    # -- persistence --------------------------------------------------------------

    def to_json(self) -> str:
        return json.dumps({
            "blueprint_path": self.blueprint_path,
            "nodes": {n.name: n.as_dict() for n in self.nodes.values()},
            "instances": [
                [i.id, i.node, i.host_id, [[getattr(r, f) for f in r.__slots__] for r in i.relationships]]
                for i in self.instances.values()
            ],
            "outputs": self.outputs,
            "next_ids": self.next_ids,
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        try:
            nodes = {name: PlannedNode(**body) for name, body in data["nodes"].items()}
            instances = {
                iid: PlannedInstance(iid, node, host, [PlannedRelationship(*r) for r in rels])
                for iid, node, host, rels in data["instances"]
            }
        except (KeyError, TypeError, ValueError, AttributeError) as exc:  # JSON, but not the layout to_json writes
            raise DamagedValue.plan(exc) from None

        def ancestors(inst: PlannedInstance) -> dict[str, str]:  # rebuilt from the host chain
            if inst.host_id is not None and not inst.ancestors:
                host = instances[inst.host_id]
                inst.ancestors = {**ancestors(host), host.node: host.id}
            return inst.ancestors

        for inst in instances.values():
            ancestors(inst)
        plan = cls(nodes, instances, data["outputs"], data.get("blueprint_path", ""), data.get("next_ids", {}))
        plan.next_ids = _counters(plan)  # a plan stored before next_ids: from the ids it holds
        return plan


def build_plan(bp: Blueprint, previous: Plan | None = None, remove: Set[str] = frozenset()) -> Plan:
    """Expand templates into instances; ``contained_in`` children are replicated per host.

    Against ``previous`` (the deployment's plan), each template keeps its instances that
    stand on a host it still has (as many as it now wants, oldest first, never those in
    ``remove``); others get new ids.
    """
    by_type: dict[str, list[str]] = {}  # a type's properties that require replacement, worked out once
    nodes = {
        t.name: PlannedNode(t.name, t.type, t.hierarchy, t.owner, t.values, sorted(t.runtime_paths),
                            operation_timeout=t.operation_timeout,
                            replace_on_change=list(by_type[t.type] if t.type in by_type
                                                   else by_type.setdefault(t.type, _replace_on_change(bp, t))),
                            disabled=sorted(t.disabled), operation_inputs=t.operation_inputs)
        for t in bp.templates.values()
    }
    counters = _counters(previous) if previous is not None else {}
    instances: dict[str, PlannedInstance] = {}
    for template in _hosts_first(bp):
        name = template.name
        node = nodes[name]
        hosts: list[PlannedInstance | None] = (
            [instances[h] for h in nodes[template.host].instances] if template.host else [None]
        )
        kept = _kept(previous, name, template.host)
        for host in hosts:
            host_id = host.id if host is not None else None
            ids = [i for i in kept.get(host_id, []) if i not in remove][:template.instances]
            while len(ids) < template.instances:
                n = counters.get(name, 0)
                counters[name] = n + 1
                ids.append(f"{name}_{n}")
            ancestors = {}
            if host is not None:
                ancestors = dict(host.ancestors)
                ancestors[host.node] = host.id
            for iid in ids:
                instances[iid] = PlannedInstance(iid, name, host_id, [], dict(ancestors))
                node.instances.append(iid)
    for inst in instances.values():
        template = bp.templates[inst.node]
        for rel in template.relationships:
            for target_id in _targets(inst, rel.target, rel.is_contained_in, bp, nodes, instances):
                inst.relationships.append(PlannedRelationship(
                    rel.type, rel.hierarchy, rel.owner, rel.target, target_id, rel.values,
                ))
    ordered = {iid: instances[iid] for t in bp.templates for iid in nodes[t].instances}
    for name in nodes:
        counters.setdefault(name, 0)
    return Plan(nodes, ordered, {o.name: o.value for o in bp.outputs.values()}, str(bp.path), counters)


def _replace_on_change(bp: Blueprint, template: NodeTemplate) -> list[str]:
    ntype = bp.node_types.get(template.type)
    return sorted(name for name, prop in ntype.properties.items() if prop.replace_on_change) if ntype else []


def _counters(plan: Plan) -> dict[str, int]:
    """The next unused number of each template: what the plan says, and past every id it holds."""
    counters = dict(plan.next_ids)
    for iid, inst in plan.instances.items():
        suffix = iid.rsplit("_", 1)[-1]
        if suffix.isdigit():
            counters[inst.node] = max(counters.get(inst.node, 0), int(suffix) + 1)
    return counters


def _kept(previous: Plan | None, name: str, host_template: str | None) -> dict[str | None, list[str]]:
    """The template's previous instances by host id, when it had the same host template."""
    node = previous.nodes.get(name) if previous is not None else None
    if node is None:
        return {}
    kept: dict[str | None, list[str]] = {}
    for iid in node.instances:
        inst = previous.instances[iid]  # type: ignore[union-attr]
        was_on = previous.instances[inst.host_id].node if inst.host_id else None  # type: ignore[union-attr]
        if was_on == host_template:
            kept.setdefault(inst.host_id, []).append(iid)
    return kept


def _hosts_first(bp: Blueprint) -> list[NodeTemplate]:
    if not any(t.host for t in bp.templates.values()):
        return list(bp.templates.values())  # nothing contained: any order is hosts first
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for t in bp.templates.values():
        sorter.add(t.name, *([t.host] if t.host else []))
    return [bp.templates[name] for name in sorter.static_order()]


def _targets(inst: PlannedInstance, target: str, contained: bool, bp: Blueprint,
             nodes: dict[str, PlannedNode], instances: dict[str, PlannedInstance]) -> list[str]:
    """The target instances of one relationship of one source instance.

    ``contained_in`` targets the host the source was replicated under, and a relationship
    to any template the source is (indirectly) contained in targets that very host
    instance. Otherwise, when source and target live on a common host template, the
    target instances on the same host instance are chosen (an app connects to the
    database on its own VM); else every target instance (all-to-all).
    """
    if contained:
        return [inst.host_id] if inst.host_id else []
    if inst.ancestors.get(target) is not None:
        return [inst.ancestors[target]]  # depends on its own (indirect) host
    candidates = nodes[target].instances
    if inst.ancestors and candidates:
        target_ancestors = instances[candidates[0]].ancestors
        shared = [h for h in inst.ancestors if h in target_ancestors]
        if shared:
            # the nearest common host template: the deepest one in the source's chain
            host_template = shared[-1]
            mine = inst.ancestors[host_template]
            return [c for c in candidates if instances[c].ancestors.get(host_template) == mine]
    return list(candidates)
