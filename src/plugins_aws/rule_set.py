"""``aws.ec2.SecurityGroupRules``: several rules of one group as one node.

EC2 takes one ``IpPermissions`` entry with several peers (``IpRanges``,
``UserIdGroupPairs``, ...) and several entries in one call; Cloudify's AWS plugin 3.x
rule nodes are written that way. ``aws.ec2.SecurityGroupRule`` stays one rule (one
protocol, one port range, one peer: the unit AWS gives an id to); this type holds a
list of them, each authorized, owned (tagged), revoked and checked for drift exactly
like a rule node, so a Cloudify rule node runs as one node of ours.

Changing the list replaces the node (its rules are revoked and the new ones
authorized); tags change in place.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError
from orchestrator.sdk import Problem, Resource, unresolved
from plugins_aws import rules
from plugins_aws.changes import changed, previous_tags, tag_drift
from plugins_aws.errors import call
from plugins_aws.related import host_id, one_target_id
from plugins_aws.resource import Ec2Client, retag
from plugins_aws.schema import CLIENT_PROPERTIES, TAG_PROPERTIES, replaced
from plugins_aws.tags import tag_filters, tag_specifications, tags_of

RULES_TYPE = "aws.ec2.SecurityGroupRules"
GROUP_TYPE = "aws.ec2.SecurityGroup"  # registered by plugins_aws.security_group, with the relationship:
RULE_IN_GROUP = "aws.relationships.rule_contained_in_security_group"

NODE_TYPE: dict[str, Any] = {
    "derived_from": "orchestrator.nodes.Root",
    "description": "Several rules of one security group (group_id, or related to the group).",
    "properties": {
        **CLIENT_PROPERTIES, **TAG_PROPERTIES,
        "rules": replaced({"type": "list", "entry_schema": rules.RULE_DATA_TYPE,
                           "description": "The rules, each with one peer."}),
        "direction": replaced({"type": "string", "default": "ingress",
                               "constraints": [{"valid_values": ["ingress", "egress"]}]}),
        "group_id": replaced({"type": "string", "required": False,
                              "description": "Else the related aws.ec2.SecurityGroup."}),
    },
}


def unknown_shape(rule: Any) -> bool:
    """Not a mapping yet, or a port given by a run-time function: its range cannot be checked yet."""
    return not isinstance(rule, dict) or any(unresolved(rule.get(k))
                                             for k in ("port", "from_port", "to_port", "ip_protocol"))


class RuleResource(Ec2Client, Resource):
    """What a rule node and a rule-set node share: their EC2 client and direction."""


    @property
    def direction(self) -> str:
        return str(self.properties.get("direction", "ingress"))


class SecurityGroupRules(RuleResource):
    """Each rule authorized on create (tagged as this instance's), revoked on delete."""

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        found: list[Problem] = []
        declared = node.properties.get("rules")
        if isinstance(declared, list):
            if not declared:
                found.append((("rules",), "give at least one rule"))
            for i, rule in enumerate(declared):
                why = None if unknown_shape(rule) else rules.problem(rule)
                if why:
                    found.append((("rules", i), why))
        if not node.properties.get("group_id") and not any(
                GROUP_TYPE in rel.target_type_hierarchy for rel in node.relationships):
            found.append(f"set group_id or relate the rules to an {GROUP_TYPE} ({RULE_IN_GROUP})")
        return found

    def permissions(self) -> list[dict[str, Any]]:
        return [rules.ip_permission(rule, f"{self.ctx.node.id}: rules[{i}]")
                for i, rule in enumerate(self.properties.get("rules") or [])]

    def create(self) -> None:
        group_id = (self.properties.get("group_id") or host_id(self.ctx, GROUP_TYPE)
                    or one_target_id(self.ctx, GROUP_TYPE, "security group"))
        if not group_id:
            raise NonRecoverableError(f"{self.ctx.node.id}: set group_id or relate the rules to an {GROUP_TYPE}")
        self.save(group_id=group_id, direction=self.direction)  # from here on, delete revokes them
        tags = tag_specifications(["security-group-rule"], self.tags())
        done: list[dict[str, Any]] = []
        for permission in self.permissions():
            ids = rules.authorize(self.client, group_id, self.direction, permission, tag_specifications=tags)
            ids = ids or self.own_rule_ids(group_id, permission)  # ours from an earlier attempt?
            if not ids:
                self.logger.warning("an identical %s rule existed on %s before this deployment; uninstall "
                                    "leaves it", rules.permission_text(self.direction, permission), group_id)
            done.append({"ids": ids, "preexisting": not ids})
        flat = [i for rule in done for i in rule["ids"]]
        self.runtime.update({"rules": done, "security_group_rule_ids": flat,
                             "aws_resource_id": flat[0] if flat else None})
        self.logger.info("authorized %d %s rule(s) on %s", len(flat), self.direction, group_id)

    def own_rule_ids(self, group_id: str, permission: dict[str, Any]) -> list[str]:
        found = call(self.client.describe_security_group_rules, Filters=tag_filters(self.markers))
        return [r["SecurityGroupRuleId"] for r in (found or {}).get("SecurityGroupRules") or []
                if r.get("GroupId") == group_id and rules.matches(r, self.direction, permission)]

    def delete(self) -> None:
        group_id = self.runtime.get("group_id")
        if not group_id:
            return
        recorded = self.runtime.get("rules") or []
        direction = self.runtime.get("direction", self.direction)
        for i, permission in enumerate(self.permissions()):
            if i < len(recorded) and recorded[i].get("preexisting"):
                continue  # someone else's rule: left as it was
            rules.revoke(self.client, group_id, direction, permission)
        self.logger.info("revoked the %s rules of %s on %s", direction, self.ctx.node.id, group_id)

    def tags(self) -> dict[str, str]:
        return {**{str(k): str(v) for k, v in (self.properties.get("tags") or {}).items()}, **self.markers}

    def update(self) -> None:
        """Only tags change in place (``rules``, ``direction`` and ``group_id`` replace the node)."""
        ids = list(self.runtime.get("security_group_rule_ids") or [])
        if changed(self.ctx.changes, "tags") and ids:
            old = {**previous_tags(self.properties, self.ctx.changes), **self.markers}
            retag(self.client, ids, old, self.tags(), self.logger)

    def check_drift(self) -> dict[str, Any] | None:
        """Each recorded rule by its ids: gone, or its tags changed."""
        found: dict[str, Any] = {}
        direction = self.runtime.get("direction", self.direction)
        recorded = self.runtime.get("rules") or []
        for i, (permission, rule) in enumerate(zip(self.permissions(), recorded, strict=False)):
            if rule.get("preexisting") or not rule.get("ids"):
                continue
            answer = call(self.client.describe_security_group_rules, ignore=rules.RULE_GONE,
                          SecurityGroupRuleIds=list(rule["ids"]))
            described = (answer or {}).get("SecurityGroupRules") or []
            if not described:
                found[f"rules[{i}]"] = f"gone: {rules.permission_text(direction, permission)}"
                continue
            found.update({f"rules[{i}].{k}": v for k, v in tag_drift(self.tags(), tags_of(described[0])).items()})
        return found or None


__all__ = ["NODE_TYPE", "RULES_TYPE", "SecurityGroupRules"]
