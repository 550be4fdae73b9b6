"""A security group's rules against its declaration: what update changes, what drift reports.

Pure functions over the rules AWS describes (DescribeSecurityGroupRules, with their
tags) and the declared ``(name, direction, IpPermission)`` triples, so every decision is
unit-testable. The rule that matters: a rule is revoked only if it is provably ours
(``ours(rule)``: tagged with this node instance's ownership tags, or, on a group
configured by an earlier version, matching the old declaration); anything else on the
group, added by hand or by another node (a ``SecurityGroupRule``), is left alone, and
drift reports the hand-made ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from orchestrator.sdk import INSTANCE_MARKER
from plugins_aws import rules
from plugins_aws.tags import tags_of

DEFAULT_EGRESS = {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}
"""The allow-all egress rule AWS puts in every new VPC group."""
_DEFAULT_EGRESS_RULE = {"IsEgress": True, "IpProtocol": "-1", "CidrIpv4": "0.0.0.0/0"}  # as described

Declared = Sequence[tuple[str, str, dict[str, Any]]]  # (rules[0], direction, IpPermission)
Rule = Mapping[str, Any]


def declared_match(rule: Rule, declared: Declared) -> tuple[str, str, dict[str, Any]] | None:
    """The declaration ``rule`` satisfies, if any."""
    return next((d for d in declared if rules.matches(rule, d[1], d[2])), None)


def is_default_egress(rule: Rule) -> bool:
    return rules.matches(rule, "egress", DEFAULT_EGRESS)


def declares_default_egress(declared: Declared) -> bool:
    """Whether the declaration itself asks for the allow-all egress rule."""
    return declared_match(_DEFAULT_EGRESS_RULE, declared) is not None


def managed_elsewhere(rule: Rule) -> bool:
    """A rule some orchestrator node made (it carries an instance's ownership tag)."""
    return INSTANCE_MARKER in tags_of(rule)


def to_revoke(existing: Sequence[Rule], declared: Declared, ours: Callable[[Rule], bool]) -> list[Rule]:
    """Our rules that no declaration wants any more."""
    return [r for r in existing if declared_match(r, declared) is None and ours(r)]


def to_authorize(existing: Sequence[Rule], declared: Declared) -> list[tuple[str, str, dict[str, Any]]]:
    """Declarations no rule satisfies yet."""
    return [d for d in declared if not any(rules.matches(r, d[1], d[2]) for r in existing)]


def descriptions(existing: Sequence[Rule], declared: Declared,
                 ours: Callable[[Rule], bool]) -> list[tuple[str, str, dict[str, Any]]]:
    """Declarations whose (our) rule exists with another description: AWS changes it in place."""
    found = []
    for rule in existing:
        match = declared_match(rule, declared)
        if match is not None and ours(rule) and (rule.get("Description") or None) != _description(match[2]):
            found.append(match)
    return found


def _description(permission: Mapping[str, Any]) -> str | None:
    for entries in permission.values():
        if isinstance(entries, list) and entries and isinstance(entries[0], dict):
            return entries[0].get("Description") or None
    return None


def drift(existing: Sequence[Rule], declared: Declared, *, default_egress: bool | None) -> dict[str, Any]:
    """Declared rules that are missing, and rules someone added by hand.

    ``default_egress``: True when AWS's allow-all egress rule belongs (kept), False when
    it was revoked (``revoke_default_egress``), None when the group is adopted: then
    undeclared rules were there before us and are not drift.
    """
    found: dict[str, Any] = {}
    for name, direction, permission in declared:
        if not any(rules.matches(r, direction, permission) for r in existing):
            found[name] = {"recorded": rules.permission_text(direction, permission), "actual": None}
    if default_egress is None:
        return found
    if default_egress and not any(is_default_egress(r) for r in existing):
        found["egress_rules (AWS's default allow-all)"] = {
            "recorded": rules.permission_text("egress", DEFAULT_EGRESS), "actual": None}
    extra: dict[str, list[str]] = {"rules": [], "egress_rules": []}
    for rule in existing:
        if declared_match(rule, declared) is not None or managed_elsewhere(rule):
            continue
        if default_egress and is_default_egress(rule):
            continue
        key = "egress_rules" if rule.get("IsEgress") else "rules"
        extra[key].append(f"{rules.rule_text(rule)} ({rule.get('SecurityGroupRuleId')})")
    for key, texts in extra.items():
        if texts:
            found[f"{key} (not declared)"] = {"recorded": None, "actual": sorted(texts)}
    return found
