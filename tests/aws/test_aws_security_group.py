"""aws.ec2.SecurityGroup and aws.ec2.SecurityGroupRule hooks in isolation."""

from __future__ import annotations

import uuid

import pytest
from aws_helpers import aws_answers, group_exists, ingress

from orchestrator import BlueprintError, NonRecoverableError, OperationRetry, RecoverableError
from plugins_aws import rules
from plugins_aws.tags import INSTANCE_TAG
from plugins_aws.testing import leaked

pytestmark = pytest.mark.integration

GROUP = "aws.ec2.SecurityGroup"
RULE = "aws.ec2.SecurityGroupRule"
IN_GROUP = "aws.relationships.rule_contained_in_security_group"

SSH = {"port": 22, "cidr_ip": "10.0.0.0/8", "description": "ssh"}
WEB = {"from_port": 8000, "to_port": 8080, "cidr_ip": "0.0.0.0/0"}


def test_create_authorize_delete(node, ec2):
    sg = node(GROUP, "sg", rules=[SSH, WEB], egress_rules=[{"ip_protocol": "-1", "cidr_ip": "10.1.0.0/16"}],
              revoke_default_egress=True)
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    (group,) = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    assert group["GroupName"] == f"test-{sg.id}"
    assert {t["Key"]: t["Value"] for t in group["Tags"]}[INSTANCE_TAG] == sg.id
    sg.call("configure")
    sg.call("configure")  # authorizing again is a no-op, not an error
    rules = {(p["IpProtocol"], p.get("FromPort"), p.get("ToPort"), p["IpRanges"][0]["CidrIp"])
             for p in ingress(ec2, gid)}
    assert rules == {("tcp", 22, 22, "10.0.0.0/8"), ("tcp", 8000, 8080, "0.0.0.0/0")}
    (group,) = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    egress = [r["CidrIp"] for p in group["IpPermissionsEgress"] for r in p["IpRanges"]]
    assert egress == ["10.1.0.0/16"]  # the default allow-all is gone
    sg.call("delete")
    assert not group_exists(ec2, gid)
    sg.call("delete")  # already gone


@pytest.mark.parametrize(("rule", "message"), [
    ({"cidr_ip": "0.0.0.0/0"}, "property 'rules\\[1\\]': a tcp rule needs port or from_port"),
    ({"port": 22}, "give exactly one of cidr_ip"),
    ({"port": 22, "cidr_ip": "0.0.0.0/0", "source_group_id": "sg-1"}, "got cidr_ip, source_group_id"),
    ({"port": 22, "from_port": 22, "cidr_ip": "0.0.0.0/0"}, "port or from_port/to_port, not both"),
])
def test_a_bad_rule_is_refused_at_validate_time(node, ec2, rule, message):
    with pytest.raises(BlueprintError, match=message):
        node(GROUP, "sg", rules=[{"port": 443, "cidr_ip": "0.0.0.0/0"}, rule])
    assert ec2.describe_security_groups(Filters=[{"Name": f"tag:{INSTANCE_TAG}", "Values": ["sg*"]}])[
        "SecurityGroups"] == []


def test_aws_rejects_a_rule(node, ec2):
    sg = node(GROUP, "sg", rules=[{"port": 22, "cidr_ip": "not-a-cidr"}])
    sg.call("create")
    with pytest.raises(NonRecoverableError, match=r"AWS InvalidParameterValue in AuthorizeSecurityGroupIngress"):
        sg.call("configure")
    sg.call("delete")


def test_rule_referencing_another_group(node, ec2):
    lb = node(GROUP, "lb")
    lb.call("create")
    lb_id = lb.runtime_properties["aws_resource_id"]
    app = node(GROUP, "app", rules=[{"port": 80, "source_group_id": lb_id}])
    app.call("create")
    app.call("configure")
    (perm,) = ingress(ec2, app.runtime_properties["aws_resource_id"])
    assert perm["UserIdGroupPairs"][0]["GroupId"] == lb_id
    app.call("delete")
    lb.call("delete")


def test_delete_asks_to_be_retried_while_aws_answers_dependency_violation(node, ec2, monkeypatch):
    sg = node(GROUP, "sg", wait_timeout=30)
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    with aws_answers(monkeypatch, "DeleteSecurityGroup", "DependencyViolation", times=2) as seen:
        for attempt in range(2):  # what the engine does: run it again after retry_after
            with pytest.raises(OperationRetry, match="to be free of dependents") as info:
                sg.call("delete", retry_number=attempt)
            assert info.value.retry_after < 1  # short pauses first (growing faster with few retries left)
            assert group_exists(ec2, gid)
        sg.call("delete", retry_number=2)
    assert seen[0] == 2
    assert not group_exists(ec2, gid)


def test_delete_gives_up_after_wait_timeout(node, ec2, monkeypatch):
    sg = node(GROUP, "sg", wait_timeout=0)
    sg.call("create")
    with (aws_answers(monkeypatch, "DeleteSecurityGroup", "DependencyViolation", times=1),
          pytest.raises(NonRecoverableError, match=r"gave up waiting for security group sg-\w+ to be free")):
        sg.call("delete")
    sg.call("delete")


def test_throttling_is_recoverable(node, monkeypatch):
    sg = node(GROUP, "sg")
    with aws_answers(monkeypatch, "CreateSecurityGroup", "RequestLimitExceeded", times=1):
        with pytest.raises(RecoverableError, match="RequestLimitExceeded"):
            sg.call("create")
        sg.call("create")
    sg.call("delete")


def test_rule_node_authorize_and_revoke(node, ec2):
    sg = node(GROUP, "sg")
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    rule = node(RULE, "rule", relationships=[(IN_GROUP, sg)], port=443, cidr_ip="0.0.0.0/0")
    rule.call("create")
    assert rule.runtime_properties["group_id"] == gid
    (perm,) = ingress(ec2, gid)
    assert (perm["FromPort"], perm["IpRanges"][0]["CidrIp"]) == (443, "0.0.0.0/0")
    rule.call("create")  # idempotent
    rule.call("delete")
    assert ingress(ec2, gid) == []
    rule.call("delete")  # already revoked
    sg.call("delete")


def test_egress_rule_node_by_group_id(node, ec2):
    sg = node(GROUP, "sg")
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    rule = node(RULE, "rule", direction="egress", group_id=gid, ip_protocol="udp", port=53,
                cidr_ip="10.0.0.2/32")
    rule.call("create")
    (group,) = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    assert any(p.get("FromPort") == 53 for p in group["IpPermissionsEgress"])
    rule.call("delete")
    (group,) = ec2.describe_security_groups(GroupIds=[gid])["SecurityGroups"]
    assert not any(p.get("FromPort") == 53 for p in group["IpPermissionsEgress"])
    sg.call("delete")


def test_rule_without_a_group_is_refused_at_validate_time(node):
    with pytest.raises(BlueprintError, match="set group_id or relate the rule"):
        node(RULE, "rule", port=22, cidr_ip="0.0.0.0/0")


def test_use_external_resource_keeps_the_group_and_removes_only_our_rules(node, ec2):
    gid = ec2.create_security_group(GroupName="external-sg-x1", Description="theirs")["GroupId"]
    sg = node(GROUP, "sg", use_external_resource=True, resource_id=gid, rules=[SSH])
    sg.call("create")
    assert sg.runtime_properties["external_resource"] is True
    sg.call("configure")
    assert len(ingress(ec2, gid)) == 1
    sg.call("delete")
    assert group_exists(ec2, gid)
    assert ingress(ec2, gid) == []
    ec2.delete_security_group(GroupId=gid)


def test_use_external_resource_by_name_and_missing(node, ec2):
    gid = ec2.create_security_group(GroupName="external-sg-x2", Description="theirs")["GroupId"]
    sg = node(GROUP, "sg", use_external_resource=True, resource_id="external-sg-x2")
    sg.call("create")
    assert sg.runtime_properties["aws_resource_id"] == gid
    ec2.delete_security_group(GroupId=gid)
    missing = node(GROUP, "sg", use_external_resource=True, resource_id="sg-0123456789abcdef0")
    with pytest.raises(NonRecoverableError, match="does not exist"):
        missing.call("create")


def test_resume_finds_the_group_by_tag(node, ec2):
    sg = node(GROUP, "sg")
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    sg.runtime_properties = {}  # the id was never saved
    sg.call("create")
    assert sg.runtime_properties["aws_resource_id"] == gid
    sg.call("delete")


def test_resume_when_tags_are_not_searchable_yet(node, monkeypatch):
    """CreateSecurityGroup answering Duplicate for a group this instance created is a resume."""
    from plugins_aws.security_group import SecurityGroup

    sg = node(GROUP, "sg")
    sg.call("create")
    gid = sg.runtime_properties["aws_resource_id"]
    sg.runtime_properties = {}
    monkeypatch.setattr(SecurityGroup, "find_tagged", lambda self, filters: [])
    sg.call("create")
    assert sg.runtime_properties["aws_resource_id"] == gid


def test_duplicate_name_of_someone_elses_group(node, ec2):
    gid = ec2.create_security_group(GroupName="taken-sg-x1", Description="theirs")["GroupId"]
    sg = node(GROUP, "sg", group_name="taken-sg-x1")
    with pytest.raises(NonRecoverableError, match=r"InvalidGroup\.Duplicate"):
        sg.call("create")
    sg.call("delete")
    assert group_exists(ec2, gid)
    ec2.delete_security_group(GroupId=gid)


# -- an adopted group: uninstall revokes only the rules this deployment added -------------

OFFICE_SSH = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}


def _external_group(ec2, name):
    """A group made out of band, with one ingress rule (and AWS's default allow-all egress)."""
    gid = ec2.create_security_group(GroupName=name, Description="theirs")["GroupId"]
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[OFFICE_SSH])
    return gid


def _rules(ec2, gid):
    """{(direction, protocol, from port, to port, cidr)} of the group."""
    found = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [gid]}])
    return {("egress" if r["IsEgress"] else "ingress", r["IpProtocol"], r.get("FromPort"), r.get("ToPort"),
             r.get("CidrIpv4")) for r in found["SecurityGroupRules"]}


THEIRS = {("ingress", "tcp", 22, 22, "10.0.0.0/8"), ("egress", "-1", -1, -1, "0.0.0.0/0")}
OURS = {("ingress", "tcp", 80, 80, "0.0.0.0/0"), ("egress", "udp", 53, 53, "10.0.0.2/32")}

ADOPTING_BLUEPRINT = """
inputs:
  group_id: {type: string}
node_templates:
  sg:
    type: aws.ec2.SecurityGroup
    properties:
      use_external_resource: true
      resource_id: {get_input: group_id}
      poll_interval: 0.01
      rules:
        - {port: 22, cidr_ip: 10.0.0.0/8}
        - {port: 80, cidr_ip: 0.0.0.0/0}
      egress_rules:
        - {ip_protocol: "-1", cidr_ip: 0.0.0.0/0}
        - {ip_protocol: udp, port: 53, cidr_ip: 10.0.0.2/32}
"""


def test_adopted_group_uninstall_leaves_rules_that_existed_before(aws_orch, ec2, deployment):
    gid = _external_group(ec2, f"{deployment}-adopted")
    assert _rules(ec2, gid) == THEIRS
    run = aws_orch.install(ADOPTING_BLUEPRINT, {"group_id": gid}, deployment=deployment)
    assert run.ok, run.failures
    rt = run.runtime_properties["sg_0"]
    assert rt["preexisting_rules"] == ["rules[0]", "egress_rules[0]"]
    assert len(rt["owned_rule_ids"]) == 2
    assert _rules(ec2, gid) == THEIRS | OURS

    run = aws_orch.uninstall(deployment=deployment)
    assert run.ok, run.failures
    assert group_exists(ec2, gid)
    assert _rules(ec2, gid) == THEIRS  # the group is as it was found
    assert leaked(deployment) == {}
    ec2.delete_security_group(GroupId=gid)


ADOPTED_RULES = {"rules": [SSH, {"port": 80, "cidr_ip": "0.0.0.0/0"}],
                 "egress_rules": [{"ip_protocol": "udp", "port": 53, "cidr_ip": "10.0.0.2/32"}]}


def test_adopted_group_configure_twice_does_not_take_its_own_rules_for_preexisting(node, ec2):
    gid = _external_group(ec2, f"adopted-{uuid.uuid4().hex[:8]}")
    sg = node(GROUP, "sg", use_external_resource=True, resource_id=gid, **ADOPTED_RULES)
    sg.call("create")
    sg.call("configure")
    owned = sorted(sg.runtime_properties["owned_rule_ids"])
    assert len(owned) == 2 and sg.runtime_properties["preexisting_rules"] == ["rules[0]"]
    sg.call("configure")  # run again: the rules answer Duplicate, but carry our tags
    assert sorted(sg.runtime_properties["owned_rule_ids"]) == owned
    assert sg.runtime_properties["preexisting_rules"] == ["rules[0]"]
    # a crash after authorizing, before the runtime properties were saved; then a resume
    for key in ("owned_rule_ids", "preexisting_rules"):
        sg.runtime_properties = {k: v for k, v in sg.runtime_properties.items() if k != key}
    sg.call("configure")
    assert sorted(sg.runtime_properties["owned_rule_ids"]) == owned
    assert sg.runtime_properties["preexisting_rules"] == ["rules[0]"]
    sg.call("delete")
    assert _rules(ec2, gid) == THEIRS
    ec2.delete_security_group(GroupId=gid)


def test_adopted_group_rules_found_by_tag_when_never_recorded(node, ec2):
    """Uninstall right after a configure that crashed before saving: our rules carry our tags."""
    gid = _external_group(ec2, f"adopted-{uuid.uuid4().hex[:8]}")
    sg = node(GROUP, "sg", use_external_resource=True, resource_id=gid, **ADOPTED_RULES)
    sg.call("create")
    sg.call("configure")
    sg.runtime_properties = {k: v for k, v in sg.runtime_properties.items()
                             if k not in ("owned_rule_ids", "preexisting_rules")}
    sg.call("delete")
    assert _rules(ec2, gid) == THEIRS
    sg.call("delete")  # nothing left to revoke
    assert group_exists(ec2, gid)
    ec2.delete_security_group(GroupId=gid)


def test_adopted_group_leaves_rules_another_deployment_added(node, ec2):
    """Two instances adopting one group: a rule the first added is not the second's."""
    gid = _external_group(ec2, f"adopted-{uuid.uuid4().hex[:8]}")
    web = {"rules": [{"port": 80, "cidr_ip": "0.0.0.0/0"}]}
    first = node(GROUP, "sg", use_external_resource=True, resource_id=gid, **web)
    second = node(GROUP, "sg", use_external_resource=True, resource_id=gid, **web)
    for sg in (first, second):
        sg.call("create")
        sg.call("configure")
    assert len(first.runtime_properties["owned_rule_ids"]) == 1
    assert second.runtime_properties["owned_rule_ids"] == []
    assert second.runtime_properties["preexisting_rules"] == ["rules[0]"]
    second.call("delete")
    assert ("ingress", "tcp", 80, 80, "0.0.0.0/0") in _rules(ec2, gid)
    first.call("delete")
    assert _rules(ec2, gid) == THEIRS
    ec2.delete_security_group(GroupId=gid)


@pytest.mark.parametrize(("rule", "direction", "permission", "expected"), [
    ({"IsEgress": False, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "10.0.0.0/8"},
     "ingress", OFFICE_SSH, True),
    ({"IsEgress": True, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "10.0.0.0/8"},
     "ingress", OFFICE_SSH, False),
    ({"IsEgress": False, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 23, "CidrIpv4": "10.0.0.0/8"},
     "ingress", OFFICE_SSH, False),
    ({"IsEgress": False, "IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIpv4": "10.0.0.0/16"},
     "ingress", OFFICE_SSH, False),
    ({"IsEgress": True, "IpProtocol": "-1", "FromPort": -1, "ToPort": -1, "CidrIpv4": "0.0.0.0/0"},
     "egress", {"IpProtocol": "-1", "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}, True),
    ({"IsEgress": False, "IpProtocol": "udp", "FromPort": 53, "ToPort": 53, "CidrIpv6": "::/0"},
     "ingress", {"IpProtocol": "17", "FromPort": 53, "ToPort": 53, "Ipv6Ranges": [{"CidrIpv6": "::/0"}]}, True),
    ({"IsEgress": False, "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
      "ReferencedGroupInfo": {"GroupId": "sg-1"}},
     "ingress", {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
     True),
    ({"IsEgress": False, "IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "CidrIpv4": "0.0.0.0/0"},
     "ingress", {"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80, "UserIdGroupPairs": [{"GroupId": "sg-1"}]},
     False),
])
def test_rule_matches_permission(rule, direction, permission, expected):
    assert rules.matches(rule, direction, permission) is expected


def test_a_group_in_the_default_vpc_records_the_vpc_id(node, ec2):
    """Issue 18: vpc_id was None at runtime for a group made without vpc_id (the docs say it is set)."""
    default = ec2.describe_vpcs(Filters=[{"Name": "isDefault", "Values": ["true"]}])["Vpcs"][0]["VpcId"]
    sg = node(GROUP, "sg")
    sg.call("create")
    assert sg.runtime_properties["vpc_id"] == default
    sg.call("delete")
