"""What changing a deployment to a new plan would do, instance by instance.

Each instance is compared with what it *is*: the plan version it was last installed or
updated with (``InstanceRow.plan_version``), not the deployment's latest plan, so a diff
after an update that stopped half way still shows what remains. Per instance:

- ``create``: not in the deployment yet, or never got past ``create`` (install resumes it);
- ``delete``: no longer planned;
- ``update``: properties (each changed path, old -> new) or relationships changed, and the
  type's plugin can update it in place (it implements the ``update`` hook);
- ``replace``: deleted then created again, with the reason (its type changed, a property
  marked ``replace_on_change`` changed, its plugin has no ``update`` hook, its host is
  replaced); instances whose relationships point at a replaced one re-run those hooks.

Secrets are never compared or shown by value: a plan keeps ``{get_secret: NAME}``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from orchestrator.plan import Plan, PlannedInstance, PlannedNode, relationship_keys
from orchestrator.state import InstanceRow

ACTIONS = ("create", "update", "replace", "delete")


@attrs.define(slots=True)
class PropertyChange:
    path: str  # "port", "rules[0].cidr", "tags.owner"
    old: Any
    new: Any
    added: bool = False
    removed: bool = False


@attrs.define(slots=True)
class Change:
    instance: str
    node: str
    type: str
    action: str  # create | update | replace | delete
    reason: str = ""  # why replace; for create, "resume" when it was started before
    properties: list[PropertyChange] = attrs.field(factory=list)
    added: list[str] = attrs.field(factory=list)  # relationship keys "target/type"
    removed: list[str] = attrs.field(factory=list)
    relink: list[str] = attrs.field(factory=list)  # relationships to replaced targets: hooks re-run
    old_type: str = ""


@attrs.define(slots=True)
class Diff:
    deployment: str
    changes: list[Change]
    outputs: dict[str, tuple[Any, Any]]  # name -> (old, new); missing side is MISSING
    unchanged: list[str]  # instances in the plan that need nothing

    @property
    def empty(self) -> bool:
        return not self.changes and not self.outputs

    def by_action(self, action: str) -> list[Change]:
        return [c for c in self.changes if c.action == action]

    def counts(self) -> dict[str, int]:
        return {a: len(self.by_action(a)) for a in ACTIONS}


ABSENT = object()  # the side of a change where a key or output does not exist


def unfinished(row: InstanceRow) -> bool:
    """Installed only in part: not started, or an operation began and did not finish."""
    return row.state != "started" or any(v != "succeeded" for v in row.ops.values())


def exists(row: InstanceRow | None) -> bool:
    """Whether anything was ever done to the instance (so it may hold a real resource)."""
    return row is not None and (bool(row.ops) or row.state not in ("uninitialized", "deleted"))


def compute(deployment: str, current: Plan, current_version: int, rows: Mapping[str, InstanceRow],
            versions: Callable[[int], Plan | None], desired: Plan,
            updatable: Callable[[PlannedNode], bool]) -> Diff:
    """The changes that bring the deployment (``current`` plan, instance ``rows``) to ``desired``.

    ``versions(n)`` gives an older plan an instance was installed with; ``updatable(node)``
    tells whether the plugin of a node's type updates it in place.
    """
    changes: dict[str, Change] = {}
    unchanged: list[str] = []
    old_defs: dict[str, tuple[PlannedInstance, PlannedNode]] = {}

    def old_def(row: InstanceRow) -> tuple[PlannedInstance, PlannedNode] | None:
        plan = versions(row.plan_version) if row.plan_version is not None else current
        plan = plan or current
        inst = plan.instances.get(row.id)
        return (inst, plan.nodes[inst.node]) if inst is not None else None

    for iid, inst in desired.instances.items():
        node = desired.nodes[inst.node]
        row = rows.get(iid)
        before = old_def(row) if exists(row) else None
        if before is None:
            changes[iid] = Change(iid, inst.node, node.type, "create")
            continue
        old_defs[iid] = before
        old_inst, old_node = before
        if row.ops.get("create") != "succeeded":  # type: ignore[union-attr]
            changes[iid] = Change(iid, inst.node, node.type, "create", "resume")
            continue
        change = _compare(iid, old_inst, old_node, inst, node, updatable)
        if change is not None:
            changes[iid] = change
        elif unfinished(row):  # type: ignore[arg-type]
            changes[iid] = Change(iid, inst.node, node.type, "create", "resume")
        else:
            unchanged.append(iid)
    for iid, row in rows.items():
        if iid not in desired.instances and exists(row):
            before = old_def(row)
            node_name = before[0].node if before else row.node
            ntype = before[1].type if before else ""
            changes[iid] = Change(iid, node_name, ntype, "delete")
    _cascade(desired, changes, unchanged)
    _relink(desired, changes, unchanged)
    ordered = [changes[i] for i in desired.instances if i in changes]
    ordered += [c for i, c in changes.items() if i not in desired.instances]
    return Diff(deployment, ordered, _outputs(current.outputs, desired.outputs), unchanged)


def forced(deployment: str, plan: Plan, reasons: Mapping[str, str]) -> Diff:
    """Reinstall some instances of a deployment as they are planned (heal): each is replaced,
    with what it contains; its neighbours re-run their relationship hooks toward it."""
    changes: dict[str, Change] = {}
    for iid, reason in reasons.items():
        inst = plan.instances[iid]
        node = plan.nodes[inst.node]
        changes[iid] = Change(iid, inst.node, node.type, "replace", reason)
    unchanged = [i for i in plan.instances if i not in changes]
    _cascade(plan, changes, unchanged)
    _relink(plan, changes, unchanged)
    return Diff(deployment, [changes[i] for i in plan.instances if i in changes], {}, unchanged)


def _compare(iid: str, old_inst: PlannedInstance, old_node: PlannedNode, inst: PlannedInstance,
             node: PlannedNode, updatable: Callable[[PlannedNode], bool]) -> Change | None:
    props = list(_paths(old_node.properties, node.properties, ""))
    old_keys, new_keys = _relationships(old_inst), _relationships(inst)
    added = [k for k in new_keys if k not in old_keys or new_keys[k] != old_keys[k]]
    removed = [k for k in old_keys if k not in new_keys or new_keys[k] != old_keys[k]]
    if old_node.type != node.type:
        return Change(iid, inst.node, node.type, "replace", f"its type changed from {old_node.type}",
                      props, added, removed, old_type=old_node.type)
    if not props and not added and not removed:
        return None
    forced = sorted({p.path.split(".")[0].split("[")[0] for p in props} & set(node.replace_on_change))
    if forced:
        return Change(iid, inst.node, node.type, "replace",
                      f"{'properties' if len(forced) > 1 else 'property'} {', '.join(forced)} "
                      f"cannot change in place", props, added, removed)
    if props and not updatable(node):
        return Change(iid, inst.node, node.type, "replace",
                      f"its plugin ({node.owner or 'none'}) has no update hook", props, added, removed)
    return Change(iid, inst.node, node.type, "update", "", props, added, removed)


def _relationships(inst: PlannedInstance) -> dict[str, Any]:
    """Relationship key -> its properties (a relationship whose properties changed is re-made)."""
    return {key: rel.properties for key, rel in zip(relationship_keys(inst), inst.relationships, strict=True)}


def _paths(old: Any, new: Any, prefix: str):
    """Leaf-level differences between two property values, as paths."""
    if isinstance(old, dict) and isinstance(new, dict) and not _is_function(old) and not _is_function(new):
        for key in sorted(old.keys() | new.keys(), key=str):
            path = f"{prefix}.{key}" if prefix else str(key)
            if key not in new:
                yield PropertyChange(path, old[key], ABSENT, removed=True)
            elif key not in old:
                yield PropertyChange(path, ABSENT, new[key], added=True)
            else:
                yield from _paths(old[key], new[key], path)
        return
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for n, (a, b) in enumerate(zip(old, new, strict=True)):
            yield from _paths(a, b, f"{prefix}[{n}]")
        return
    if old != new or type(old) is not type(new):
        yield PropertyChange(prefix, old, new)


def _is_function(value: dict) -> bool:
    from orchestrator.dsl.functions import as_function

    return as_function(value) is not None


def _cascade(plan: Plan, changes: dict[str, Change], unchanged: list[str]) -> None:
    """What is contained in a replaced instance is replaced with it (a new VM has no containers)."""
    replaced = {i for i, c in changes.items() if c.action == "replace"}
    for iid, inst in plan.instances.items():  # hosts come before what they contain
        change = changes.get(iid)
        if inst.host_id in replaced and (change is None or change.action == "update"):
            node = plan.nodes[inst.node]
            changes[iid] = Change(iid, inst.node, node.type, "replace", f"its host {inst.host_id} is replaced",
                                  change.properties if change else [], change.added if change else [],
                                  change.removed if change else [])
            replaced.add(iid)
            if iid in unchanged:
                unchanged.remove(iid)


def _relink(plan: Plan, changes: dict[str, Change], unchanged: list[str]) -> None:
    """Instances kept in place re-run their relationship hooks toward replaced targets."""
    gone = {i for i, c in changes.items() if c.action == "replace"}
    for iid, inst in plan.instances.items():
        change = changes.get(iid)
        if change is not None and change.action in ("replace", "create"):
            continue
        relink = [key for key, rel in zip(relationship_keys(inst), inst.relationships, strict=True)
                  if rel.target_id in gone and (change is None or key not in change.added)]
        if not relink:
            continue
        if change is None:
            node = plan.nodes[inst.node]
            change = changes[iid] = Change(iid, inst.node, node.type, "update")
            unchanged.remove(iid)
        change.relink = relink


def _outputs(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    return {name: (old.get(name, ABSENT), new.get(name, ABSENT))
            for name in [*old, *(n for n in new if n not in old)] if old.get(name, ABSENT) != new.get(name, ABSENT)}
