"""Cloudify's scaling groups: members that scale together, one unit per group instance.

A group targeted by a ``cloudify.policies.scaling`` policy becomes a template of its own
(``orchestrator.nodes.Root``: no operations), with ``default_instances`` instances; each
of its members not contained in another member is ``contained_in`` it, and a scaling
group inside another is contained in that one. Planning then does what Cloudify does:
members are replicated per group instance (a member's own ``instances`` count per group
instance), and a relationship between members of one group joins the instances of the
same group instance (a VM to its own elastic IP), while a relationship from or to outside
the group joins instances as it always does. ``orchestrator scale GROUP=N`` and
``scale --remove GROUP_K`` scale the group, as Cloudify's scale workflow does.

A group whose members live on a host outside it (the databases on each of several VMs)
keeps its hosts: its count multiplies its members' own, per host instance, and members
of one such group instance are not paired.

What Cloudify's parser refuses is refused here, with the same reasons: a group with a node
template's name, a cycle of groups, a template or group in two groups, members that do not
all stand on the same host (or all on none), and instance counts out of their bounds.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import YDict, YList, child_mark, key_mark, mark_of

GROUP_TYPE = "orchestrator.nodes.Root"
CONTAINED_IN = "orchestrator.relationships.contained_in"
UNBOUNDED = -1


@dataclass
class ScalingGroups:
    """What the scaling groups make of the node templates."""

    counts: dict[str, int] = field(default_factory=dict)  # template -> factor of its count (groups on a host)
    templates: dict[str, YDict] = field(default_factory=dict)  # group -> the template standing for it
    hosts: dict[str, str] = field(default_factory=dict)  # template -> the group template it is contained in

    def put_in_group(self, template: str, translated: Any) -> None:
        """Give a member's translated template its ``contained_in`` to its group's template (marked
        where the group is); ``relationships`` that are not a list are the loader's to report."""
        group = self.hosts.get(template)
        if group is None or not isinstance(translated, YDict):
            return
        mark = self.templates[group].mark
        rels = translated.get("relationships")
        if rels is None:
            translated["relationships"] = rels = _marked_list([], mark)
            translated.key_marks["relationships"] = translated.value_marks["relationships"] = mark
        if isinstance(rels, YList):
            rels.append(_contained_in(group, mark))
            rels.item_marks.append(mark)


def scaling_groups(src: Mapping[str, YDict], problems: Problems) -> ScalingGroups:
    groups, templates = src["groups"], src["node_templates"]
    for gname, group in groups.items():
        if isinstance(group, dict) and group.get("policies"):
            problems.add(mark_of(group, "policies"), f"not supported: group '{shown(gname)}': policies "
                         "(monitoring, auto-heal and scale triggers need a Cloudify manager)")
    valid = _valid_groups(groups, templates, problems, _scaled(src))
    counts = _policy_counts(src, problems)
    if not valid:
        return ScalingGroups()
    parent = {m: g for g in counts for m in _inner_groups(g, groups, counts)}
    result = ScalingGroups()
    units = [g for g in counts if _host_of(g, groups, templates) is None]
    units = [g for g in units if all(a in units for a in _ancestors(g, parent))]
    for g in units:
        mark = mark_of(groups, g)
        unit = _marked({"type": GROUP_TYPE, "instances": counts[g].value}, mark)
        unit.value_marks["instances"] = counts[g].mark
        if g in parent:
            unit["relationships"] = _marked_list([_contained_in(parent[g], mark)], mark)
            unit.key_marks["relationships"] = unit.value_marks["relationships"] = mark
        result.templates[g] = unit
        for member in _loose_members(g, groups, units):
            if member in templates and _container(templates[member]) is None:
                result.hosts[member] = g
    for g, count in counts.items():
        if g in units:
            continue
        if not isinstance(count.value, int):
            problems.add(count.mark, f"group '{shown(g)}': its members stand on a host outside it, so its count "
                         "multiplies theirs and must be a whole number here, not a get_input")
            continue
        for member in _top_members(g, groups, templates):
            result.counts[member] = result.counts.get(member, 1) * count.value
    return result


# ---------------------------------------------------------------- what Cloudify refuses


def _scaled(src: Mapping[str, YDict]) -> set[str]:
    """The groups a scaling policy targets: the ones whose shape Cloudify checks (a group that is
    only a label, for a Cloudify manager's own use, may share members or span hosts)."""
    groups, scaled = src["groups"], set()
    for policy in src["policies"].values():
        if isinstance(policy, dict) and policy.get("type") == "cloudify.policies.scaling":
            targets = policy.get("targets")
            scaled |= {t for t in targets if isinstance(t, str) and t in groups} if isinstance(targets, list) else set()
    return scaled


def _valid_groups(groups: YDict, templates: Mapping[str, Any], problems: Problems, scaled: set[str]) -> bool:
    """Every group names existing members; the groups a policy scales also belong to one group
    at most, hold no cycle, and stand on one host (Cloudify's ``_validate_and_update_groups``)."""
    before = len(problems)
    owner: dict[str, str] = {}
    for gname, body in groups.items():
        where = f"group '{shown(gname)}'"
        if gname in templates:
            problems.add(key_mark(groups, gname), f"{where} has the name of a node template; give it another")
        raw = body.get("members") if isinstance(body, dict) else None
        if not isinstance(raw, list) or not raw:
            problems.add(mark_of(groups, gname), f"{where}: members must be a list of node templates and groups")
            continue
        for i, member in enumerate(raw):
            mark = child_mark(raw, i, mark_of(body, "members"))
            if not isinstance(member, str):
                problems.add(mark, f"{where}: a member must be the name of a node template or group, not "
                             f"{shown(member)}")
            elif member not in templates and member not in groups:
                problems.add(mark, f"{where}: member '{shown(member)}' is neither a node template nor a group"
                             f"{did_you_mean(str(member), [*templates, *groups])}")
            elif gname not in scaled:
                continue
            elif member in owner and owner[member] != gname:
                problems.add(mark, f"{where}: '{shown(member)}' is a member of group '{shown(owner[member])}' "
                             "already (a template or group belongs to one group)")
            else:
                owner[str(member)] = str(gname)
    if len(problems) > before:
        return False
    scaling = {g: body for g, body in groups.items() if g in scaled}
    for gname in scaling:
        chain = _cycle(str(gname), scaling)
        if chain:
            problems.add(key_mark(groups, gname), f"group '{shown(gname)}' contains itself: {' -> '.join(chain)}")
            return False
    for gname in scaling:
        hosts = {_container(templates[m]) for m in _top_members(str(gname), groups, templates)}
        if len(hosts) > 1:
            shown_hosts = ", ".join("none" if h is None else f"'{shown(h)}'" for h in sorted(hosts, key=str))
            problems.add(key_mark(groups, gname), f"group '{shown(gname)}': its members must all be contained "
                         f"in the same node template, or all in none (they are in {shown_hosts})")
    return len(problems) == before


def _cycle(group: str, groups: Mapping[str, Any]) -> list[str]:
    path, stack = [group], [iter(_direct(group, groups))]
    while stack:
        member = next(stack[-1], None)
        if member is None:
            stack.pop()
            path.pop()
        elif member == group:
            return [*path, group]
        elif member in groups and member not in path:
            path.append(member)
            stack.append(iter(_direct(member, groups)))
    return []


def _policy_counts(src: Mapping[str, YDict], problems: Problems) -> dict[str, Count]:
    """Each scaling group's ``default_instances`` (1 without; a group two policies scale: their product)."""
    groups, counts = src["groups"], {}
    for pname, policy in src["policies"].items():
        if not isinstance(policy, dict):
            problems.add(mark_of(src["policies"], pname), f"policy '{shown(pname)}' must be a mapping (type, "
                         "targets, properties)")
            continue
        if policy.get("type") != "cloudify.policies.scaling":
            problems.add(mark_of(policy, "type"), f"not supported: policy '{shown(pname)}' of type "
                         f"'{shown(policy.get('type'))}' (only cloudify.policies.scaling)")
            continue
        count = _instances(str(pname), policy, problems)
        targets = policy.get("targets")
        if not isinstance(targets, list) or not targets:
            problems.add(mark_of(policy, "targets") if "targets" in policy else key_mark(src["policies"], pname),
                         f"policy '{shown(pname)}': targets must list the groups it scales")
            continue
        for i, target in enumerate(targets):
            if not isinstance(target, str) or target not in groups:
                problems.add(child_mark(targets, i, mark_of(policy, "targets")),
                             f"policy '{shown(pname)}': target '{shown(target)}' is not a group"
                             f"{did_you_mean(str(target), groups)}")
            elif count is not None and target not in targets[:i]:  # (a target named twice is scaled once)
                if target in counts and not (isinstance(count.value, int) and isinstance(counts[target].value, int)):
                    problems.add(count.mark, f"policy '{shown(pname)}': group '{shown(target)}' is scaled by "
                                 "another policy too, so both counts must be whole numbers here")
                    continue
                before = counts[target].value if target in counts else 1
                counts[target] = Count(before * count.value if isinstance(count.value, int) else count.value,
                                       count.mark)
    return counts


@dataclass
class Count:
    """A group's instance count: a whole number, or the ``get_input`` that gives it (at planning)."""

    value: Any
    mark: Mark


def _instances(name: str, policy: YDict, problems: Problems) -> Count | None:
    """``default_instances``, checked against ``min_instances`` and ``max_instances`` as Cloudify does
    (when they are numbers here; a ``get_input`` count is checked once the inputs are known)."""
    props = policy.get("properties") or {}
    if not isinstance(props, dict):
        problems.add(mark_of(policy, "properties"), f"policy '{shown(name)}': properties must be a mapping")
        return None
    values: dict[str, Any] = {}
    for key, default in (("default_instances", 1), ("min_instances", 0), ("max_instances", UNBOUNDED)):
        value = props.get(key, default)
        if key == "max_instances" and value == "UNBOUNDED":
            value = UNBOUNDED
        if _is_input(value):
            values[key] = value
        elif not isinstance(value, int) or isinstance(value, bool):
            problems.add(mark_of(props, key), f"policy '{shown(name)}': {key} must be a whole number or a "
                         f"get_input{' or UNBOUNDED' if key == 'max_instances' else ''}")
            return None
        values[key] = value
    count = Count(values["default_instances"], mark_of(props, "default_instances") if "default_instances" in props
                  else mark_of(policy, "properties"))
    if any(_is_input(v) for v in values.values()):
        return count
    default, low, high = values["default_instances"], values["min_instances"], values["max_instances"]
    why = ("default_instances is below 0" if default < 0 else "min_instances is below 0" if low < 0 else
           "max_instances is below 1 (UNBOUNDED or -1: no bound)" if high != UNBOUNDED and high < 1 else
           "min_instances is above max_instances" if high != UNBOUNDED and low > high else
           "default_instances is below min_instances" if default < low else
           "default_instances is above max_instances" if high != UNBOUNDED and default > high else None)
    if why:
        problems.add(mark_of(policy, "properties"), f"policy '{shown(name)}': {why}")
        return None
    return count


def _is_input(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and "get_input" in value


# ---------------------------------------------------------------- membership


def _direct(group: str, groups: Mapping[str, Any]) -> list[str]:
    body = groups.get(group)
    raw = body.get("members") if isinstance(body, dict) else None
    return [m for m in raw if isinstance(m, str)] if isinstance(raw, list) else []


def _members(group: str, groups: Mapping[str, Any], seen: frozenset[str] = frozenset()) -> list[str]:
    """The templates of a group, those of the groups in it included."""
    result: list[str] = []
    for m in _direct(group, groups):
        if m in groups:
            if m not in seen:
                result.extend(_members(m, groups, seen | {group}))
        else:
            result.append(m)
    return result


def _top_members(group: str, groups: Mapping[str, Any], templates: Mapping[str, Any]) -> list[str]:
    """The group's templates not contained in another of them (the others follow their host)."""
    members = [m for m in _members(group, groups) if m in templates]
    return [m for m in members if _container(templates[m]) not in members]


def _host_of(group: str, groups: Mapping[str, Any], templates: Mapping[str, Any]) -> str | None:
    """The template outside the group its members are contained in (None: they stand alone)."""
    for member in _top_members(group, groups, templates):
        return _container(templates[member])
    return None


def _inner_groups(group: str, groups: Mapping[str, Any], scaling: Mapping[str, Any],
                  seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """The scaling groups right inside this one (through groups no policy scales)."""
    for m in _direct(group, groups):
        if m in scaling and m != group:
            yield m
        elif m in groups and m not in seen:
            yield from _inner_groups(m, groups, scaling, seen | {group})


def _loose_members(group: str, groups: Mapping[str, Any], units: list[str],
                   seen: frozenset[str] = frozenset()) -> Iterator[str]:
    """The templates whose nearest unit is this group: its own, and those of groups in it that
    are not units (groups no policy scales)."""
    for m in _direct(group, groups):
        if m in groups:
            if m not in units and m not in seen:
                yield from _loose_members(m, groups, units, seen | {group})
        else:
            yield m


def _ancestors(group: str, parent: Mapping[str, str]) -> Iterator[str]:
    seen = {group}
    while group in parent and parent[group] not in seen:
        group = parent[group]
        seen.add(group)
        yield group


def _container(body: Any) -> str | None:
    """The template a template is ``contained_in`` (by the relationship type's name), or None."""
    rels = body.get("relationships") if isinstance(body, dict) else None
    for rel in rels if isinstance(rels, list) else []:
        if isinstance(rel, dict) and "contained_in" in str(rel.get("type")):
            target = rel.get("target")
            return str(target) if target is not None else None
    return None


# ---------------------------------------------------------------- marked templates


def _marked(values: Mapping[str, Any], mark: Mark) -> YDict:
    result = YDict()
    result.mark = mark
    for key, value in values.items():
        result[key] = value
        result.key_marks[key] = result.value_marks[key] = mark
    return result


def _marked_list(items: list[Any], mark: Mark) -> YList:
    result = YList()
    result.mark = mark
    result.extend(items)
    result.item_marks.extend(mark for _ in items)
    return result


def _contained_in(target: str, mark: Mark) -> YDict:
    return _marked({"type": CONTAINED_IN, "target": target}, mark)


__all__ = ["ScalingGroups", "scaling_groups"]
