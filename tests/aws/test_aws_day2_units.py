"""Day 2 decisions of the AWS plugin that need no AWS: old values from ``ctx.changes``, tag
edits, which rules an update may revoke, how drift reads, what replaces each type."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.diff import ABSENT
from orchestrator.sdk import INSTANCE_MARKER
from plugins_aws import changes, rule_sync, rules
from plugins_aws.testing import PLUGINS

SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
WEB = {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "IpRanges": [{"CidrIp": "0.0.0.0/0", "Description": "web"}]}
OURS = {"orchestrator.deployment": "d", INSTANCE_MARKER: "sg_0"}


def described(rule_id: str, port: int, cidr: str, *, egress: bool = False, tags: dict[str, str] | None = None,
              protocol: str = "tcp", description: str | None = None) -> dict[str, Any]:
    """A rule as DescribeSecurityGroupRules answers."""
    rule = {"SecurityGroupRuleId": rule_id, "IsEgress": egress, "IpProtocol": protocol, "FromPort": port,
            "ToPort": port, "CidrIpv4": cidr, "Tags": [{"Key": k, "Value": v} for k, v in (tags or {}).items()]}
    if description:
        rule["Description"] = description
    return rule


def test_previous_rebuilds_old_values_from_leaf_changes():
    new = {"rules": [{"port": 80, "cidr_ip": "0.0.0.0/0"}, {"port": 443, "cidr_ip": "0.0.0.0/0", "description": "x"}]}
    delta = {"rules[0].port": (22, 80), "rules[1].description": (ABSENT, "x"), "tags.owner": ("a", "b")}
    assert changes.previous(new, delta, "rules") == [{"port": 22, "cidr_ip": "0.0.0.0/0"},
                                                     {"port": 443, "cidr_ip": "0.0.0.0/0"}]
    assert new["rules"][1]["description"] == "x"  # the new value is left alone
    assert changes.previous(new, {"rules": ([{"port": 1}], new["rules"])}, "rules") == [{"port": 1}]  # resized
    assert changes.previous({"name": "b"}, {"name": (ABSENT, "b")}, "name") is None
    with pytest.raises(changes.Unknown):
        changes.previous({"rules": []}, {"rules[3].port": (1, 2)}, "rules")


def test_previous_tags_keep_dotted_keys_whole():
    new = {"tags": {"app.kubernetes.io/name": "web", "team": "ops"}}
    delta = {"tags.app.kubernetes.io/name": ("api", "web"), "tags.team": (ABSENT, "ops"), "tags.old": ("x", ABSENT)}
    assert changes.previous_tags(new, delta) == {"app.kubernetes.io/name": "api", "old": "x"}


def test_tag_edits_set_what_changed_and_remove_only_what_was_declared():
    assert changes.tag_edits({"a": "1", "b": "2", "c": {"get_secret": "x"}}, {"a": "1", "b": "3"}) == (
        {"b": "3"}, {"c": None})  # a value known only at run time: removed by key
    assert changes.tag_drift({"a": "1", "b": "2"}, {"a": "1", "b": "9", "z": "stranger's"}) == {
        "tags.b": {"recorded": "2", "actual": "9"}}
    assert changes.changed({"rules[0].port": (1, 2)}, "rules") and not changes.changed({"rules2": (1, 2)}, "rules")


def test_rules_read_like_people_write_them():
    assert rules.permission_text("ingress", SSH) == "tcp 22 from 10.0.0.0/8"
    assert rules.permission_text("egress", rule_sync.DEFAULT_EGRESS) == "all to 0.0.0.0/0"
    assert rules.permission_text("ingress", {"IpProtocol": "udp", "FromPort": 1000, "ToPort": 2000,
                                             "UserIdGroupPairs": [{"GroupId": "sg-1"}]}) == "udp 1000-2000 from sg-1"
    assert rules.rule_text(described("sgr-1", 22, "10.0.0.0/8")) == "tcp 22 from 10.0.0.0/8"
    assert rules.rule_text(described("sgr-2", -1, "1.2.3.4/32", protocol="icmp", egress=True)) == "icmp to 1.2.3.4/32"


def test_update_revokes_only_our_rules_no_declaration_wants():
    declared = [("rules[0]", "ingress", WEB)]
    existing = [described("sgr-ssh", 22, "10.0.0.0/8", tags=OURS),  # ours, no longer declared
                described("sgr-web", 80, "0.0.0.0/0", tags=OURS, description="old"),
                described("sgr-hand", 8080, "203.0.113.0/24"),  # added by hand
                described("sgr-node", 443, "0.0.0.0/0", tags={INSTANCE_MARKER: "https_0"}),  # a rule node's
                described("sgr-egress", -1, "0.0.0.0/0", egress=True, protocol="-1")]  # AWS's default
    ours = lambda rule: rule_sync.tags_of(rule).get(INSTANCE_MARKER) == "sg_0"  # noqa: E731
    assert [r["SecurityGroupRuleId"] for r in rule_sync.to_revoke(existing, declared, ours)] == ["sgr-ssh"]
    assert rule_sync.to_authorize(existing, [*declared, ("rules[1]", "ingress", SSH)]) == []
    assert rule_sync.to_authorize(existing[1:], [("rules[1]", "ingress", SSH)]) == [("rules[1]", "ingress", SSH)]
    assert rule_sync.descriptions(existing, declared, ours) == declared  # "old" -> "web", in place


def test_drift_reports_missing_and_hand_made_rules_only():
    declared = [("rules[0]", "ingress", SSH), ("rules[1]", "ingress", WEB)]
    existing = [described("sgr-web", 80, "0.0.0.0/0", tags=OURS),
                described("sgr-hand", 8080, "203.0.113.0/24"),
                described("sgr-node", 443, "0.0.0.0/0", tags={INSTANCE_MARKER: "https_0"}),
                described("sgr-egress", -1, "0.0.0.0/0", egress=True, protocol="-1")]
    missing = {"rules[0]": {"recorded": "tcp 22 from 10.0.0.0/8", "actual": None}}
    assert rule_sync.drift(existing, declared, default_egress=True) == {
        **missing, "rules (not declared)": {"recorded": None, "actual": ["tcp 8080 from 203.0.113.0/24 (sgr-hand)"]}}
    assert rule_sync.drift(existing, declared, default_egress=False) == {  # revoke_default_egress: it is drift
        **missing, "rules (not declared)": {"recorded": None, "actual": ["tcp 8080 from 203.0.113.0/24 (sgr-hand)"]},
        "egress_rules (not declared)": {"recorded": None, "actual": ["all to 0.0.0.0/0 (sgr-egress)"]}}
    assert rule_sync.drift(existing, declared, default_egress=None) == missing  # adopted: the rest was there
    assert rule_sync.drift(existing[:1], declared[1:], default_egress=True) == {
        "egress_rules (AWS's default allow-all)": {"recorded": "all to 0.0.0.0/0", "actual": None}}


# What each type can change in place; everything else replaces it (replace_on_change).
REPLACED = {
    "aws.ec2.KeyPair": {"key_name", "key_type", "public_key_material"},
    "aws.ec2.SecurityGroup": {"group_name", "description", "vpc_id"},
    "aws.ec2.SecurityGroupRule": {"ip_protocol", "port", "from_port", "to_port", "cidr_ip", "cidr_ipv6",
                                  "source_group_id", "prefix_list_id", "direction", "group_id"},
    "aws.ec2.Instance": {"image_id", "key_name", "subnet_id", "user_data", "parameters"},
    "aws.ec2.ElasticIP": {"domain"},
    "aws.ec2.VPC": {"cidr_block", "instance_tenancy"},
    "aws.ec2.Subnet": {"cidr_block", "vpc_id", "availability_zone"},
}
COMMON = {"client_config", "use_external_resource", "resource_id"}


@pytest.mark.parametrize("type_name", sorted(REPLACED))
def test_what_replaces_each_type_and_that_the_rest_updates_in_place(type_name):
    plugin = next(p for p in PLUGINS if type_name in (p.types or {}).get("node_types", {}))
    properties = plugin.types["node_types"][type_name]["properties"]
    replaced = {name for name, prop in properties.items() if prop.get("replace_on_change")}
    common = COMMON if type_name != "aws.ec2.SecurityGroupRule" else {"client_config"}
    assert replaced == REPLACED[type_name] | common
    assert plugin.handles("update", ["orchestrator.nodes.Root", type_name])
    assert plugin.handles("check_drift", ["orchestrator.nodes.Root", type_name])
