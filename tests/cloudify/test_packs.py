"""The packs' mapping functions, one Cloudify node at a time (no engine, no AWS)."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.cloudify import MappingError, PackNode
from plugins_aws import cloudify_compat as aws
from plugins_docker import cloudify_compat as docker

RULE_IN = ("cloudify.nodes.Root", "cloudify.nodes.aws.ec2.SecurityGroupRuleIngress")


def node(type_hierarchy: tuple[str, ...], operation_inputs: Any = None, **properties: Any) -> PackNode:
    return PackNode("n", type_hierarchy[-1], type_hierarchy, properties, operation_inputs or {})


def test_rule_node_with_several_entries_and_peers_becomes_one_rule_per_peer() -> None:
    perms = [{"IpProtocol": "icmp", "FromPort": -1, "ToPort": -1, "IpRanges": [{"CidrIp": "0.0.0.0/0"}],
              "UserIdGroupPairs": [{"GroupId": {"get_attribute": ["sg1", "aws_resource_id"]}}]},
             {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22,
              "IpRanges": [{"CidrIp": "10.0.0.0/8", "Description": "ssh"}, {"CidrIp": "192.168.0.0/16"}]}]
    out = aws._rule(node(RULE_IN, resource_config={"kwargs": {"IpPermissions": perms}}))
    assert out["direction"] == "ingress"
    assert out["rules"] == [
        {"ip_protocol": "icmp", "from_port": -1, "to_port": -1, "cidr_ip": "0.0.0.0/0"},
        {"ip_protocol": "icmp", "from_port": -1, "to_port": -1,
         "source_group_id": {"get_attribute": ["sg1", "aws_resource_id"]}},
        {"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_ip": "10.0.0.0/8", "description": "ssh"},
        {"ip_protocol": "tcp", "from_port": 22, "to_port": 22, "cidr_ip": "192.168.0.0/16"}]


@pytest.mark.parametrize(("perms", "message"), [
    ([], "must be a non-empty list"),
    ([{"IpProtocol": "tcp", "FromPort": 1, "ToPort": 2}], "names no peer"),
    ([{"IpProtocol": "tcp", "IpRanges": [{"CidrIp": "0.0.0.0/0"}], "Foo": 1}], "not supported: IpPermissions[0]: Foo"),
])
def test_rule_node_refusals(perms: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message.replace("[", r"\[").replace("]", r"\]")):
        aws._rule(node(RULE_IN, resource_config={"IpPermissions": perms}))


def test_v1_instance_parameters_are_boto2_names() -> None:
    hierarchy = ("cloudify.nodes.Root", "cloudify.nodes.Compute", "cloudify.aws.nodes.Instance", "my.Host")
    out = aws._instance(node(hierarchy, image_id="ami-1", instance_type="t2.micro",
                             parameters={"user_data": "#!/bin/sh", "placement": "us-east-1a"}))
    assert out["user_data"] == "#!/bin/sh" and out["parameters"] == {"Placement": {"AvailabilityZone": "us-east-1a"}}
    with pytest.raises(MappingError, match=r"not supported: parameters\.security_groups"):
        aws._instance(node(hierarchy, image_id="ami-1", parameters={"security_groups": ["x"]}))


def test_v1_container_pulls_when_missing_and_takes_create_and_start_params() -> None:
    ops = {"create": {"params": {"ports": [8080], "tty": True, "command": "sleep 9", "environment": {"A": 1}}},
           "start": {"params": {"port_bindings": {8080: 80}, "extra_hosts": {"db": "10.0.0.1"}}}}
    out = docker._container_v1(node(("cloudify.nodes.Root", "cloudify.docker.Container"), ops, name="web",
                                    image={"repository": "busybox", "tag": 1.36}))
    assert out == {"image": "busybox:1.36", "pull_policy": "if_not_present", "network_mode": "bridge",
                   "tty": True, "command": "sleep 9", "environment": {"A": 1}, "extra_hosts": {"db": "10.0.0.1"},
                   "name": "web", "ports": {"8080/tcp": 80}}


@pytest.mark.parametrize(("ops", "message"), [
    ({"create": {"params": {"mem_limit": "1g"}}}, "not supported: the create operation's docker-py argument 'mem_limit'"),
    ({"start": {"params": {"privileged": True}}}, "not supported: the start operation's docker-py argument 'privileged'"),
    ({"stop": {"params": {"timeout": 3}}}, "not supported: stop params"),
    ({"start": {"processes_to_wait_for": ["nginx"]}}, "not supported: processes_to_wait_for"),
])
def test_v1_container_refuses_what_it_cannot_pass(ops: Any, message: str) -> None:
    with pytest.raises(MappingError, match=message):
        docker._container_v1(node(("cloudify.nodes.Root", "cloudify.docker.Container"), ops,
                                  image={"repository": "busybox"}))


def test_the_aws_plugins_other_families_are_not_supported_rather_than_unknown() -> None:
    assert "no S3 through Swift" in aws.PACK.why_unsupported("cloudify.nodes.swift.s3.Bucket")
    assert "account-wide" in aws.PACK.why_unsupported("cloudify.nodes.resources.AmazonWebServices")
    assert aws.PACK.why_unsupported("cloudify.nodes.Root") is None
