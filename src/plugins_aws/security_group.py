"""The ``aws_security_group`` plugin: ``aws.ec2.SecurityGroup``, ``aws.ec2.SecurityGroupRule`` and
``aws.ec2.SecurityGroupRules`` (``rule_set``).

A group's ``rules``/``egress_rules`` are authorized in ``configure`` (after the group
exists, so a rule may name another group by ``get_attribute``); a rule can also be its
own node, related to its group, with its own lifecycle. On an adopted group the rules
are tagged with the ownership tags and uninstall revokes only those: a declared rule
that existed before the deployment stays. Deleting a group waits while AWS
answers ``DependencyViolation`` (instances still terminating).

Day 2: rules, egress rules, ``revoke_default_egress`` and tags change in place (name,
description and VPC cannot: they replace the group). Every rule this plugin authorizes
carries the node instance's ownership tags, so an update revokes exactly the rules it
made and no declaration wants any more, never one added by hand or by another node;
``check_drift`` reports declared rules that are missing and rules added by hand
(``plugins_aws.rule_sync``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError
from orchestrator.sdk import Plugin, Problem
from plugins_aws import rule_set, rule_sync, rules
from plugins_aws.changes import Unknown, changed, differs, previous, previous_tags, tag_drift
from plugins_aws.errors import call, error_code
from plugins_aws.related import one_target_id
from plugins_aws.resource import AwsResource, retag
from plugins_aws.schema import CLIENT_PROPERTIES, TAG_PROPERTIES, replaced, resource_properties
from plugins_aws.tags import tag_filters, tag_list, tag_specifications, tags_of

GROUP_TYPE = "aws.ec2.SecurityGroup"
RULE_TYPE = "aws.ec2.SecurityGroupRule"
RULE_IN_GROUP = "aws.relationships.rule_contained_in_security_group"
VPC_TYPE = "aws.ec2.VPC"
NOT_FOUND = ("InvalidGroup.NotFound",)
ALLOW_ALL_EGRESS = rule_sync.DEFAULT_EGRESS
RULES_TAGGED = "rules_tagged"  # own group: its rules carry our ownership tags (not so in earlier versions)
OWNED_RULE_IDS = "owned_rule_ids"  # adopted group: ids of the rules this instance authorized
PREEXISTING_RULES = "preexisting_rules"  # adopted group: declared rules that were there already

TYPES: dict[str, Any] = {
    "data_types": rules.DATA_TYPES,
    "node_types": {
        GROUP_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A security group with its ingress and egress rules.",
            "properties": resource_properties({
                "group_name": replaced({"type": "string", "required": False,
                                        "description": "Defaults to '<deployment>-<instance id>'."}),
                "description": replaced({"type": "string", "default": "managed by orchestrator"}),
                "vpc_id": replaced({"type": "string", "required": False,
                                    "description": "Else the related aws.ec2.VPC, else the default VPC."}),
                "rules": {"type": "list", "entry_schema": rules.RULE_DATA_TYPE, "default": [],
                          "description": "Ingress rules."},
                "egress_rules": {"type": "list", "entry_schema": rules.RULE_DATA_TYPE, "default": []},
                "revoke_default_egress": {"type": "boolean", "default": False,
                                          "description": "Remove the allow-all egress rule AWS "
                                                         "adds to a new VPC group."},
            }),
        },
        rule_set.RULES_TYPE: rule_set.NODE_TYPE,
        RULE_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "One rule of a security group (group_id, or related to the group).",
            "properties": {
                **CLIENT_PROPERTIES, **TAG_PROPERTIES,
                **{name: prop if name == "description" else replaced(prop) for name, prop in rules.RULE_FIELDS.items()},
                "direction": replaced({"type": "string", "default": "ingress",
                                       "constraints": [{"valid_values": ["ingress", "egress"]}]}),
                "group_id": replaced({"type": "string", "required": False,
                                      "description": "Else the related aws.ec2.SecurityGroup."}),
            },
        },
    },
    "relationships": {
        RULE_IN_GROUP: {"derived_from": "orchestrator.relationships.contained_in",
                        "description": "A SecurityGroupRule belongs to a SecurityGroup."},
    },
}


def named_rules(properties: Any) -> list[tuple[str, str, dict[str, Any]]]:
    """(``rules[0]``, direction, IpPermission) for each declared rule."""
    return [(name, *rule) for name, rule in zip(rule_names(properties), declared_rules(properties), strict=True)]


def declared_rules(properties: Any) -> list[tuple[str, dict[str, Any]]]:
    """(direction, IpPermission) for each rule in ``rules`` and ``egress_rules``."""
    result = []
    for direction, key in (("ingress", "rules"), ("egress", "egress_rules")):
        for i, rule in enumerate(properties.get(key) or []):
            result.append((direction, rules.ip_permission(rule, f"{key}[{i}]")))
    return result


def rule_names(properties: Any) -> list[str]:
    """``rules[0]``, ..., ``egress_rules[0]``, ...: names of ``declared_rules``' entries."""
    return [f"{key}[{i}]" for key in ("rules", "egress_rules") for i in range(len(properties.get(key) or []))]


def rule_problems(properties: Any) -> list[Problem]:
    """Every declared rule AWS would refuse, as ``((key, index), why)``: all of them, at validate time."""
    found: list[Problem] = []
    for key in ("rules", "egress_rules"):
        declared = properties.get(key)
        if not isinstance(declared, list):
            continue  # a function (get_attribute) or absent: known at run time only
        for i, rule in enumerate(declared):
            if not rule_set.unknown_shape(rule):
                why = rules.problem(rule)
                if why:
                    found.append(((key, i), why))
    return found


class SecurityGroup(AwsResource):
    kind = "security group"
    tag_resource_types = ("security-group",)

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        return rule_problems(node.properties)

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        if resource_id.startswith("sg-"):
            found = call(self.client.describe_security_groups, ignore=NOT_FOUND, GroupIds=[resource_id])
        else:  # a group name
            filters = [{"Name": "group-name", "Values": [resource_id]}]
            if self.vpc_id():
                filters.append({"Name": "vpc-id", "Values": [self.vpc_id()]})
            found = call(self.client.describe_security_groups, Filters=filters)
        groups = (found or {}).get("SecurityGroups") or []
        return groups[0] if groups else None

    def find_tagged(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return call(self.client.describe_security_groups, Filters=filters)["SecurityGroups"]

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["GroupId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"group_id": resource["GroupId"], "group_name": resource.get("GroupName"),
                "vpc_id": resource.get("VpcId")}

    def vpc_id(self) -> str | None:
        return self.properties.get("vpc_id") or one_target_id(self.ctx, VPC_TYPE, "VPC")

    def create(self) -> dict[str, Any]:
        declared_rules(self.properties)  # a bad rule fails before anything is created
        return super().create()

    def create_new(self) -> dict[str, Any]:
        name = self.properties.get("group_name") or self.default_name()
        vpc_id = self.vpc_id()
        params = {"VpcId": vpc_id} if vpc_id else {}
        try:
            created = call(self.client.create_security_group, GroupName=name,
                           Description=self.properties.get("description") or name,
                           TagSpecifications=self.tag_specifications(), **params)
        except NonRecoverableError as exc:
            # ours, created by an attempt whose tags were not yet searchable
            existing = self.describe(name) if error_code(exc.__cause__) == "InvalidGroup.Duplicate" else None
            if existing is not None and self.owned(existing):
                return existing
            raise
        # no VpcId in the answer: in the default VPC, the group's own description says which
        return {"GroupId": created["GroupId"], "GroupName": name, "VpcId": vpc_id or self.default_vpc_id()}

    def default_vpc_id(self) -> str | None:
        found = call(self.client.describe_vpcs, Filters=[{"Name": "is-default", "Values": ["true"]}])
        vpcs = (found or {}).get("Vpcs") or []
        return vpcs[0]["VpcId"] if vpcs else None

    def delete_existing(self, resource_id: str) -> None:
        self.delete_when_free(self.client.delete_security_group, f"security group {resource_id}",
                              NOT_FOUND, GroupId=resource_id)

    def apply_rules(self) -> None:
        group_id = self.resource_id
        if self.properties.get("revoke_default_egress") and not self.external:
            rules.revoke(self.client, group_id, "egress", ALLOW_ALL_EGRESS)
        declared = declared_rules(self.properties)
        if self.external:
            self.apply_rules_to_adopted(group_id, declared)
            return
        if not self.runtime.get(RULES_TAGGED):
            self.save(**{RULES_TAGGED: True})  # decided before the first rule: update trusts the tags
        for direction, permission in declared:
            # a group created a moment ago may not be visible everywhere yet
            rules.authorize(self.client, group_id, direction, permission, tag_specifications=self.rule_tags(),
                            retry_codes=("InvalidGroup.NotFound",))
        self.logger.info("security group %s: %d rule(s) authorized", group_id, len(declared))

    def rule_tags(self) -> list[dict[str, Any]]:
        return tag_specifications(["security-group-rule"], self.tags())

    def apply_rules_to_adopted(self, group_id: str, declared: list[tuple[str, dict[str, Any]]]) -> None:
        """Authorize the declared rules on an adopted group, tagged, recording which are ours.

        A rule AWS answers as a duplicate is ours if it carries this instance's ownership
        tags (an earlier attempt of this configure); otherwise it existed before this
        deployment and uninstall leaves it. Only ``owned_rule_ids`` (and rules tagged as
        ours) are revoked on uninstall.
        """
        owned: list[str] = list(self.runtime.get(OWNED_RULE_IDS) or [])
        preexisting: list[str] = []
        existing: list[dict[str, Any]] | None = None  # the group's rules, read on the first duplicate
        specs = tag_specifications(["security-group-rule"], self.tags())
        for where, (direction, permission) in zip(rule_names(self.properties), declared, strict=True):
            new_ids = rules.authorize(self.client, group_id, direction, permission, tag_specifications=specs)
            if not new_ids:
                if existing is None:
                    existing = rules.group_rules(self.client, group_id)
                same = [r for r in existing if rules.matches(r, direction, permission)]
                new_ids = [r["SecurityGroupRuleId"] for r in same if self.owned(r)]
                if not new_ids:
                    preexisting.append(where)
                    self.logger.warning("security group %s: an identical %s rule (%s) existed before "
                                            "this deployment; uninstall leaves it", group_id, direction,
                                            ", ".join(r["SecurityGroupRuleId"] for r in same) or "?")
            owned.extend(i for i in new_ids if i not in owned)
        # saved once: a crash before this loses nothing, each rule we add carries our tags
        self.save(**{OWNED_RULE_IDS: owned, PREEXISTING_RULES: preexisting})
        self.logger.info("security group %s: %d rule(s) authorized, %d existed already", group_id,
                             len(declared) - len(preexisting), len(preexisting))

    def revoke_own_rules(self, group_id: str) -> None:
        """Revoke the rules this instance added to an adopted group (recorded, or tagged as ours)."""
        recorded = set(self.runtime.get(OWNED_RULE_IDS) or [])
        for rule in rules.group_rules(self.client, group_id):
            rule_id = rule["SecurityGroupRuleId"]
            if rule_id in recorded or self.owned(rule):
                rules.revoke_by_id(self.client, group_id, bool(rule.get("IsEgress")), rule_id)
                self.logger.info("security group %s: revoked rule %s", group_id, rule_id)
        self.runtime.pop(OWNED_RULE_IDS, None)
        self.runtime.pop(PREEXISTING_RULES, None)

    def configure(self) -> None:
        self.apply_rules()

    def delete(self) -> None:
        if self.external and self.resource_id:  # leave an adopted group as it was found
            self.revoke_own_rules(self.resource_id)
        super().delete()

    # -- day 2 ------------------------------------------------------------------------

    def update(self) -> None:
        if changed(self.ctx.changes, "rules", "egress_rules", "revoke_default_egress"):
            self.update_rules()
        if not self.external:
            self.update_tags()

    def update_rules(self) -> None:
        """Authorize what is newly declared, then revoke our rules no declaration wants any more."""
        group_id = self.require_id()
        declared = named_rules(self.properties)  # a bad rule fails before anything changes
        existing = rules.group_rules(self.client, group_id)
        ours = self.rule_owner()
        if self.external:
            self.revoke_rules(group_id, rule_sync.to_revoke(existing, declared, ours))
            self.apply_rules_to_adopted(group_id, [(d, p) for _, d, p in declared])
            return
        added = rule_sync.to_authorize(existing, declared)
        for _, direction, permission in added:
            rules.authorize(self.client, group_id, direction, permission, tag_specifications=self.rule_tags())
        for _, direction, permission in rule_sync.descriptions(existing, declared, ours):
            rules.update_description(self.client, group_id, direction, permission)
        self.revoke_rules(group_id, rule_sync.to_revoke(existing, declared, ours))
        self.default_egress(group_id, existing, declared)
        if not self.runtime.get(RULES_TAGGED):  # configured by an earlier version: its declared rules are ours, say so
            untagged = [r["SecurityGroupRuleId"] for r in existing
                        if rule_sync.declared_match(r, declared) and ours(r) and not self.owned(r)]
            if untagged:
                call(self.client.create_tags, Resources=untagged, Tags=tag_list(self.tags()))
            self.save(**{RULES_TAGGED: True})
        self.logger.info("security group %s: %d rule(s) authorized, %d kept", group_id, len(added),
                         len(declared) - len(added))

    def rule_owner(self) -> Any:
        """``ours(rule)``: may update revoke this rule of the group?"""
        if self.external:
            recorded = set(self.runtime.get(OWNED_RULE_IDS) or [])
            return lambda rule: rule["SecurityGroupRuleId"] in recorded or self.owned(rule)
        if self.runtime.get(RULES_TAGGED):
            return self.owned
        # configured by an earlier version, whose rules carry no tags: the ones the old properties declared are ours
        try:
            old = named_rules({key: previous(self.properties, self.ctx.changes, key)
                               for key in ("rules", "egress_rules")})
        except (Unknown, NonRecoverableError) as exc:
            self.logger.warning("the old rules cannot be told apart (%s): none is revoked", exc)
            old = []
        return lambda rule: self.owned(rule) or (not rule_sync.managed_elsewhere(rule)
                                                 and rule_sync.declared_match(rule, old) is not None)

    def revoke_rules(self, group_id: str, found: list[Any]) -> None:
        for rule in found:
            rules.revoke_by_id(self.client, group_id, bool(rule.get("IsEgress")), rule["SecurityGroupRuleId"])
            self.logger.info("security group %s: revoked %s (%s)", group_id, rules.rule_text(rule),
                             rule["SecurityGroupRuleId"])

    def default_egress(self, group_id: str, existing: list[Any], declared: list[Any]) -> None:
        """``revoke_default_egress``: remove AWS's allow-all egress rule, or put it back."""
        present = any(rule_sync.is_default_egress(r) for r in existing)
        if self.properties.get("revoke_default_egress"):
            if present and not rule_sync.declares_default_egress(declared):
                rules.revoke(self.client, group_id, "egress", ALLOW_ALL_EGRESS)
        elif not present and changed(self.ctx.changes, "revoke_default_egress"):
            rules.authorize(self.client, group_id, "egress", ALLOW_ALL_EGRESS)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        existing = rules.group_rules(self.client, resource["GroupId"])
        default = None if self.external else not self.properties.get("revoke_default_egress")
        return rule_sync.drift(existing, named_rules(self.properties), default_egress=default)


class SecurityGroupRule(rule_set.RuleResource):
    """A rule node: authorized on create, revoked on delete; its description and tags change in place."""

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        found: list[Problem] = []
        why = None if rule_set.unknown_shape(dict(node.properties)) else rules.problem(node.properties)
        if why:
            found.append(why)
        if not node.properties.get("group_id") and not any(
                GROUP_TYPE in rel.target_type_hierarchy for rel in node.relationships):
            found.append(f"set group_id or relate the rule to an {GROUP_TYPE} ({RULE_IN_GROUP})")
        return found

    def permission(self) -> dict[str, Any]:
        return rules.ip_permission(self.properties, self.ctx.node.id)

    def group_id(self) -> str:
        group_id = self.properties.get("group_id") or one_target_id(self.ctx, GROUP_TYPE, "security group")
        if not group_id:
            raise NonRecoverableError(f"{self.ctx.node.id}: set group_id or relate the rule to an "
                                      f"{GROUP_TYPE} ({RULE_IN_GROUP})")
        return group_id

    def create(self) -> None:
        permission, group_id = self.permission(), self.group_id()
        self.save(group_id=group_id, direction=self.direction)  # from here on, delete revokes it
        rule_ids = rules.authorize(self.client, group_id, self.direction, permission,
                                   tag_specifications=tag_specifications(["security-group-rule"], self.tags()))
        if rule_ids:
            self.runtime.pop("preexisting", None)
            self.logger.info("authorized %s rule on %s", self.direction, group_id)
        else:  # it exists: ours from an earlier attempt (found by tag), or someone else's
            rule_ids = self.own_rule_ids(group_id)
            if rule_ids:
                self.runtime.pop("preexisting", None)
                self.logger.info("%s rule on %s exists already (%s)", self.direction, group_id,
                                     ", ".join(rule_ids))
            else:
                self.runtime["preexisting"] = True
                self.logger.warning("an identical %s rule existed on %s before this deployment; "
                                        "uninstall leaves it", self.direction, group_id)
        self.runtime.update({"aws_resource_id": rule_ids[0] if rule_ids else None,
                             "security_group_rule_ids": rule_ids})

    def own_rule_ids(self, group_id: str) -> list[str]:
        """Rules of ``group_id`` carrying this node instance's ownership tags."""
        found = call(self.client.describe_security_group_rules, Filters=tag_filters(self.markers))
        return [r["SecurityGroupRuleId"] for r in (found or {}).get("SecurityGroupRules") or []
                if r.get("GroupId") == group_id and bool(r.get("IsEgress")) == (self.direction == "egress")]

    def delete(self) -> None:
        group_id = self.runtime.get("group_id")
        if not group_id:  # create never got as far as authorizing
            return
        if self.runtime.get("preexisting"):
            self.logger.info("leaving the %s rule on %s: it existed before this deployment",
                                 self.direction, group_id)
            return
        rules.revoke(self.client, group_id, self.runtime.get("direction", self.direction),
                     self.permission())
        self.logger.info("revoked %s rule on %s", self.direction, group_id)

    # -- day 2 ------------------------------------------------------------------------

    def tags(self) -> dict[str, str]:
        return {**{str(k): str(v) for k, v in (self.properties.get("tags") or {}).items()}, **self.markers}

    def update(self) -> None:
        group_id, ids = self.runtime.get("group_id"), list(self.runtime.get("security_group_rule_ids") or [])
        if self.runtime.get("preexisting") or not group_id:
            self.logger.info("the %s rule on %s existed before this deployment: left as it is", self.direction,
                             group_id)
            return
        if changed(self.ctx.changes, "description"):
            rules.update_description(self.client, group_id, self.direction, self.permission())
            self.logger.info("%s rule on %s: description is now %r", self.direction, group_id,
                             self.properties.get("description"))
        if changed(self.ctx.changes, "tags") and ids:
            old = {**previous_tags(self.properties, self.ctx.changes), **self.markers}
            retag(self.client, ids, old, self.tags(), self.logger)

    def check_drift(self) -> dict[str, Any] | None:
        """The rule by its id (or, for one that existed before us, by its content), compared."""
        group_id, ids = self.runtime.get("group_id"), list(self.runtime.get("security_group_rule_ids") or [])
        permission, direction = self.permission(), self.runtime.get("direction", self.direction)
        if ids:
            answer = call(self.client.describe_security_group_rules, ignore=rules.RULE_GONE,
                          SecurityGroupRuleIds=ids)
            described = (answer or {}).get("SecurityGroupRules") or []
        else:
            described = [r for r in rules.group_rules(self.client, group_id)
                         if rules.matches(r, direction, permission)]
        if not described:
            return {"gone": f"the {direction} rule {rules.permission_text(direction, permission)} of {group_id} "
                            f"no longer exists"}
        rule, found = described[0], {}
        if not rules.matches(rule, direction, permission):  # changed in place (ModifySecurityGroupRules)
            found["rule"] = differs(rules.permission_text(direction, permission), rules.rule_text(rule))
        if not self.runtime.get("preexisting"):
            if (rule.get("Description") or None) != (self.properties.get("description") or None):
                found["description"] = differs(self.properties.get("description"), rule.get("Description"))
            found.update(tag_drift(self.tags(), tags_of(rule)))
        return found or None


plugin = Plugin(TYPES, {GROUP_TYPE: SecurityGroup, RULE_TYPE: SecurityGroupRule,
                        rule_set.RULES_TYPE: rule_set.SecurityGroupRules})
