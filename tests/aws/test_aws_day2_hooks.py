"""Day 2 hooks one at a time on the moto server: the cases the CLI tests do not reach.

An instance type AWS refuses (the instance runs again as it was), a group configured
by an earlier version (its rules carry no tags: the old declaration says which are
ours), an adopted group (only the rules this deployment added are revoked), VPC and
subnet settings, key pair tags and a key that was never written. ``update`` reads
``ctx.changes``, which the harness does not set, so those calls get a small ctx of
their own.
"""

from __future__ import annotations

import logging
import types
import uuid
from typing import Any

import pytest
from aws_helpers import AMI, aws_answers

from orchestrator import NonRecoverableError
from orchestrator.diff import ABSENT
from plugins_aws.keypair import KeyPair
from plugins_aws.network import VPC, Subnet
from plugins_aws.security_group import RULES_TAGGED, SecurityGroup

pytestmark = pytest.mark.integration

SSH = {"port": 22, "cidr_ip": "10.0.0.0/8"}
WEB = {"port": 80, "cidr_ip": "0.0.0.0/0"}
HAND = {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "IpRanges": [{"CidrIp": "203.0.113.0/24"}]}


def update_ctx(node: Any, properties: dict[str, Any], changes: dict[str, tuple[Any, Any]]) -> Any:
    """What ``update`` sees for ``node`` (made by the harness) with new ``properties``."""
    instance = types.SimpleNamespace(id=node.id, runtime_properties=node.runtime_properties, relationships=[],
                                     update=lambda: None)
    return types.SimpleNamespace(
        type="node-instance", node=types.SimpleNamespace(id=node.id[:-2], properties={**node.properties, **properties}),
        instance=instance, source=None, target=None, deployment=types.SimpleNamespace(id="test"),
        changes=changes, logger=logging.getLogger("test.update"))


def ingress(ec2: Any, group_id: str) -> dict[int, dict[str, str]]:
    """Port -> tags of each ingress rule."""
    found = ec2.describe_security_group_rules(Filters=[{"Name": "group-id", "Values": [group_id]}])
    return {r["FromPort"]: {t["Key"]: t["Value"] for t in r.get("Tags") or []}
            for r in found["SecurityGroupRules"] if not r["IsEgress"]}


def test_instance_type_changes_in_place_and_a_refused_one_leaves_it_running(node, ec2, aws_orch, monkeypatch):
    vm = node("aws.ec2.Instance", image_id=AMI, instance_type="t3.micro")
    vm.run("create"), vm.run("start")
    rid = vm.runtime_properties["aws_resource_id"]
    bigger = aws_orch.node("aws.ec2.Instance", {**vm.properties, "instance_type": "t3.large"},
                           dict(vm.runtime_properties), id=vm.id[:-2])
    bigger.run("update")
    (found,) = ec2.describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"]
    assert (found["InstanceType"], found["State"]["Name"]) == ("t3.large", "running")

    wrong = aws_orch.node("aws.ec2.Instance", {**vm.properties, "instance_type": "t9.huge"},
                          dict(bigger.runtime_properties), id=vm.id[:-2])
    with aws_answers(monkeypatch, "ModifyInstanceAttribute", "InvalidInstanceAttributeValue"), \
            pytest.raises(NonRecoverableError, match="InvalidInstanceAttributeValue"):
        wrong.run("update")
    (found,) = ec2.describe_instances(InstanceIds=[rid])["Reservations"][0]["Instances"]
    assert found["InstanceType"] == "t3.large" and found["State"]["Name"] in ("pending", "running")
    vm.run("stop"), vm.run("delete")


def test_a_group_configured_by_an_earlier_version_revokes_only_the_rules_it_declared(node, ec2):
    group = node("aws.ec2.SecurityGroup", rules=[SSH, WEB])
    group.call("create"), group.call("configure")
    gid = group.runtime_properties["aws_resource_id"]
    ours = [r["SecurityGroupRuleId"] for r in ec2.describe_security_group_rules(
        Filters=[{"Name": "group-id", "Values": [gid]}])["SecurityGroupRules"] if not r["IsEgress"]]
    ec2.delete_tags(Resources=ours, Tags=[{"Key": "orchestrator.deployment"}, {"Key": "orchestrator.instance"}])
    del group.runtime_properties[RULES_TAGGED]  # as an earlier version left it
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[HAND])
    assert ingress(ec2, gid) == {22: {}, 80: {}, 8080: {}}

    SecurityGroup(update_ctx(group, {"rules": [WEB]}, {"rules": ([SSH, WEB], [WEB])})).update()
    assert ingress(ec2, gid) == {80: {"orchestrator.deployment": "test", "orchestrator.instance": group.id},
                                 8080: {}}  # 22 was declared: revoked; 80 is ours now; 8080 is someone's
    assert group.runtime_properties[RULES_TAGGED] is True
    group.call("delete")


def test_an_adopted_group_loses_only_the_rules_this_deployment_added(node, ec2):
    gid = ec2.create_security_group(GroupName=f"adopted-{uuid.uuid4().hex[:8]}", Description="x")["GroupId"]
    ssh = {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "10.0.0.0/8"}]}
    ec2.authorize_security_group_ingress(GroupId=gid, IpPermissions=[ssh])  # there before us, and declared
    group = node("aws.ec2.SecurityGroup", rules=[SSH, WEB], use_external_resource=True, resource_id=gid)
    group.call("create"), group.call("configure")
    assert group.runtime_properties["preexisting_rules"] == ["rules[0]"]

    SecurityGroup(update_ctx(group, {"rules": [{"port": 443, "cidr_ip": "0.0.0.0/0"}]},
                             {"rules": ([SSH, WEB], [{"port": 443, "cidr_ip": "0.0.0.0/0"}])})).update()
    assert sorted(ingress(ec2, gid)) == [22, 443]  # 80 (ours) revoked, 22 (not ours) kept, 443 added
    group.call("delete")
    assert sorted(ingress(ec2, gid)) == [22]
    ec2.delete_security_group(GroupId=gid)


def test_vpc_and_subnet_settings_drift_and_change_in_place(node, ec2):
    vpc = node("aws.ec2.VPC", cidr_block="10.70.0.0/16", enable_dns_hostnames=True,
               tags={"env": "test", "tier": "net"})
    vpc.run("create"), vpc.run("configure")
    subnet = node("aws.ec2.Subnet", cidr_block="10.70.1.0/24", vpc_id=vpc.runtime_properties["aws_resource_id"])
    subnet.run("create"), subnet.run("configure")
    vpc_id, subnet_id = vpc.runtime_properties["aws_resource_id"], subnet.runtime_properties["aws_resource_id"]
    assert VPC(update_ctx(vpc, {}, {})).check_drift() is None
    assert Subnet(update_ctx(subnet, {}, {})).check_drift() is None

    ec2.modify_vpc_attribute(VpcId=vpc_id, EnableDnsHostnames={"Value": False})
    ec2.create_tags(Resources=[vpc_id], Tags=[{"Key": "env", "Value": "prod"}])
    ec2.modify_subnet_attribute(SubnetId=subnet_id, MapPublicIpOnLaunch={"Value": True})
    assert VPC(update_ctx(vpc, {}, {})).check_drift() == {
        "tags.env": {"recorded": "test", "actual": "prod"},
        "enable_dns_hostnames": {"recorded": True, "actual": False}}
    assert Subnet(update_ctx(subnet, {}, {})).check_drift() == {
        "map_public_ip_on_launch": {"recorded": False, "actual": True}}

    new_vpc = {"enable_dns_hostnames": False, "tags": {"owner": "ops"}}
    VPC(update_ctx(vpc, new_vpc, {"enable_dns_hostnames": (True, False), "tags.env": ("test", ABSENT),
                                  "tags.tier": ("net", ABSENT), "tags.owner": (ABSENT, "ops")})).update()
    Subnet(update_ctx(subnet, {"map_public_ip_on_launch": True}, {"map_public_ip_on_launch": (False, True)})).update()
    assert VPC(update_ctx(vpc, new_vpc, {})).check_drift() is None
    assert Subnet(update_ctx(subnet, {"map_public_ip_on_launch": True}, {})).check_drift() is None
    (found,) = ec2.describe_vpcs(VpcIds=[vpc_id])["Vpcs"]  # tier removed; env, changed by hand since, stays
    assert {t["Key"]: t["Value"] for t in found["Tags"] if "." not in t["Key"]} == {"env": "prod", "owner": "ops"}
    subnet.run("delete"), vpc.run("delete")


def test_key_pair_tags_change_in_place_and_a_discarded_key_cannot_be_written_later(node, ec2, tmp_path):
    key = node("aws.ec2.KeyPair")  # no private_key_path: the private key is discarded
    key.call("create")
    name = key.runtime_properties["key_name"]
    KeyPair(update_ctx(key, {"tags": {"owner": "ops"}}, {"tags.owner": (ABSENT, "ops")})).update()
    (found,) = ec2.describe_key_pairs(KeyNames=[name])["KeyPairs"]
    assert {t["Key"]: t["Value"] for t in found["Tags"]}["owner"] == "ops"
    assert KeyPair(update_ctx(key, {"tags": {"owner": "ops"}}, {})).check_drift() is None
    later = update_ctx(key, {"private_key_path": str(tmp_path / "k.pem")}, {"private_key_path": (ABSENT, "k.pem")})
    with pytest.raises(NonRecoverableError, match="discarded when it was created"):
        KeyPair(later).update()
    ec2.delete_key_pair(KeyName=name)  # behind our back
    assert KeyPair(update_ctx(key, {}, {})).check_drift() == {"gone": f"key pair {name} no longer exists"}
    key.call("delete")
