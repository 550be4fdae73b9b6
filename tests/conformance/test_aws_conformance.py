"""Conformance of every AWS node type (moto server over HTTP, the plugin's real hooks).

Each subject counts its own resources by the ``orchestrator.deployment`` tag every
created resource carries (``plugins_aws.testing.list_resources``); after uninstall
nothing of the deployment may be left (``leaked``). Adoption factories create the
resource out of band, tagged for the deployment so the lister sees it; ``sweep`` removes
whatever a check leaves (the adopted resource, or a leak).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import botocore.exceptions
import pytest

from orchestrator.conformance import Env, Fixtures, Subject, conformance_tests
from plugins_aws.client import ec2_client
from plugins_aws.tags import DEPLOYMENT_TAG
from plugins_aws.testing import (
    GONE_NAT,
    LIVE_INSTANCE_STATES,
    PLUGINS,
    leaked,
    list_resources,
    root_volume,
)

pytestmark = pytest.mark.integration

AMI = "ami-12c6146b"  # in moto's catalogue
FAST = {"poll_interval": 0.01, "wait_timeout": 2.0}
RULE = {"port": 443, "cidr_ip": "10.1.0.0/16"}


def ec2() -> Any:
    return ec2_client()  # the plugin's cached client, configured by the aws_env fixture


def tagged(env: Env, resource_type: str) -> list[dict[str, Any]]:
    """TagSpecifications marking an out-of-band resource as the deployment's (so it is listed)."""
    return [{"ResourceType": resource_type, "Tags": [{"Key": DEPLOYMENT_TAG, "Value": env.deployment}]}]


LIVE_VOLUME_STATES = ["creating", "available", "in-use", "error"]

# kind -> (describe operation, result key, id key, extra filters), as in list_resources
KINDS: dict[str, tuple[str, str, str, list[dict[str, Any]]]] = {
    "key_pairs": ("describe_key_pairs", "KeyPairs", "KeyName", []),
    "security_groups": ("describe_security_groups", "SecurityGroups", "GroupId", []),
    "security_group_rules": ("describe_security_group_rules", "SecurityGroupRules", "SecurityGroupRuleId", []),
    "instances": ("describe_instances", "Reservations", "InstanceId",
                  [{"Name": "instance-state-name", "Values": LIVE_INSTANCE_STATES}]),
    "addresses": ("describe_addresses", "Addresses", "AllocationId", []),
    "vpcs": ("describe_vpcs", "Vpcs", "VpcId", []),
    "subnets": ("describe_subnets", "Subnets", "SubnetId", []),
    "internet_gateways": ("describe_internet_gateways", "InternetGateways", "InternetGatewayId", []),
    "route_tables": ("describe_route_tables", "RouteTables", "RouteTableId", []),
    "nat_gateways": ("describe_nat_gateways", "NatGateways", "NatGatewayId", []),  # (its filters are "Filter")
    "network_interfaces": ("describe_network_interfaces", "NetworkInterfaces", "NetworkInterfaceId", []),
    "volumes": ("describe_volumes", "Volumes", "VolumeId", [{"Name": "status", "Values": LIVE_VOLUME_STATES}]),
}


def kind(name: str) -> Callable[[Env], list[str]]:
    """The lister of one kind (``list_resources(deployment)[name]`` in one call, not seven)."""
    operation, key, id_key, extra = KINDS[name]

    def lister(env: Env) -> list[str]:
        filters = [{"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [env.deployment]}, *extra]
        if name == "nat_gateways":
            items = [g for g in ec2().describe_nat_gateways(Filter=filters)[key] if g["State"] not in GONE_NAT]
        elif name == "volumes":
            items = [v for v in ec2().describe_volumes(Filters=filters)[key] if not root_volume(v)]
        else:
            items = getattr(ec2(), operation)(Filters=filters)[key]
        if name == "instances":
            items = [i for reservation in items for i in reservation["Instances"]]
        return [item[id_key] for item in items]

    return lister


def routes(env: Env) -> list[str]:
    """Routes through a gateway (not the table's own ``local`` one) in the deployment's tables."""
    filters = [{"Name": f"tag:{DEPLOYMENT_TAG}", "Values": [env.deployment]}]
    return [f"{t['RouteTableId']}:{r['DestinationCidrBlock']}"
            for t in ec2().describe_route_tables(Filters=filters)["RouteTables"]
            for r in t["Routes"] if r.get("GatewayId", "local") != "local"]


def everything(env: Env) -> dict[str, list[str]]:
    return leaked(env.deployment)


def sweep(env: Env) -> None:
    """Delete whatever is tagged for the deployment, dependents first."""
    client, left = ec2(), leaked(env.deployment)
    ignore = (botocore.exceptions.ClientError,)
    if left.get("instances"):
        client.terminate_instances(InstanceIds=left["instances"])
    for kind_name, deleter in (("volumes", delete_volume), ("network_interfaces", delete_network_interface),
                               ("nat_gateways", delete_nat_gateway)):
        for resource in left.get(kind_name, []):
            with contextlib.suppress(*ignore):
                deleter(env, resource)
    for allocation in left.get("addresses", []):
        with contextlib.suppress(*ignore):
            client.release_address(AllocationId=allocation)
    for rule in left.get("security_group_rules", []):
        with contextlib.suppress(*ignore):
            revoke_rule(env, rule)
    for group in left.get("security_groups", []):
        with contextlib.suppress(*ignore):
            client.delete_security_group(GroupId=group)
    for kind_name, deleter in (("route_tables", delete_route_table), ("internet_gateways", delete_internet_gateway)):
        for resource in left.get(kind_name, []):
            with contextlib.suppress(*ignore):
                deleter(env, resource)
    for subnet in left.get("subnets", []):
        with contextlib.suppress(*ignore):
            client.delete_subnet(SubnetId=subnet)
    for vpc in left.get("vpcs", []):
        with contextlib.suppress(*ignore):
            client.delete_vpc(VpcId=vpc)
    for key in left.get("key_pairs", []):
        client.delete_key_pair(KeyName=key)


def revoke_rule(env: Env, rule_id: str) -> None:
    client = ec2()
    (rule,) = client.describe_security_group_rules(SecurityGroupRuleIds=[rule_id])["SecurityGroupRules"]
    method = client.revoke_security_group_egress if rule["IsEgress"] else client.revoke_security_group_ingress
    method(GroupId=rule["GroupId"], SecurityGroupRuleIds=[rule_id])


# ---------------------------------------------------------------- adoption factories


def adopt_key_pair(env: Env) -> str:
    name = f"{env.deployment}-external"
    ec2().create_key_pair(KeyName=name, TagSpecifications=tagged(env, "key-pair"))
    return name


def adopt_security_group(env: Env) -> str:
    return ec2().create_security_group(GroupName=f"{env.deployment}-external", Description="out of band",
                                       TagSpecifications=tagged(env, "security-group"))["GroupId"]


def adopt_instance(env: Env) -> str:
    answer = ec2().run_instances(ImageId=AMI, InstanceType="t3.nano", MinCount=1, MaxCount=1,
                                 TagSpecifications=tagged(env, "instance"))
    return answer["Instances"][0]["InstanceId"]


def adopt_address(env: Env) -> str:
    return ec2().allocate_address(Domain="vpc", TagSpecifications=tagged(env, "elastic-ip"))["AllocationId"]


def adopt_vpc(env: Env) -> str:
    return ec2().create_vpc(CidrBlock="10.20.0.0/16", TagSpecifications=tagged(env, "vpc"))["Vpc"]["VpcId"]


def adopt_subnet(env: Env) -> str:
    vpc = adopt_vpc(env)
    return ec2().create_subnet(VpcId=vpc, CidrBlock="10.20.1.0/24",
                               TagSpecifications=tagged(env, "subnet"))["Subnet"]["SubnetId"]


def adopt_internet_gateway(env: Env) -> str:
    return ec2().create_internet_gateway(TagSpecifications=tagged(env, "internet-gateway"))[
        "InternetGateway"]["InternetGatewayId"]


def adopt_route_table(env: Env) -> str:
    vpc = adopt_vpc(env)
    return ec2().create_route_table(VpcId=vpc, TagSpecifications=tagged(env, "route-table"))[
        "RouteTable"]["RouteTableId"]


def adopt_nat_gateway(env: Env) -> str:
    subnet = adopt_subnet(env)
    address = adopt_address(env)
    return ec2().create_nat_gateway(SubnetId=subnet, AllocationId=address,
                                    TagSpecifications=tagged(env, "natgateway"))["NatGateway"]["NatGatewayId"]


def adopt_network_interface(env: Env) -> str:
    subnet = adopt_subnet(env)
    return ec2().create_network_interface(SubnetId=subnet, TagSpecifications=tagged(env, "network-interface"))[
        "NetworkInterface"]["NetworkInterfaceId"]


def adopt_volume(env: Env) -> str:
    return ec2().create_volume(Size=1, AvailabilityZone="us-east-1a",
                               TagSpecifications=tagged(env, "volume"))["VolumeId"]


# ---------------------------------------------------------------- out-of-band deleters


def delete_key_pair(env: Env, name: str) -> None:
    ec2().delete_key_pair(KeyName=name)


def delete_security_group(env: Env, group_id: str) -> None:
    ec2().delete_security_group(GroupId=group_id)


def delete_instance(env: Env, instance_id: str) -> None:
    ec2().terminate_instances(InstanceIds=[instance_id])


def delete_address(env: Env, allocation_id: str) -> None:
    ec2().release_address(AllocationId=allocation_id)


def delete_vpc(env: Env, vpc_id: str) -> None:
    ec2().delete_vpc(VpcId=vpc_id)


def delete_subnet(env: Env, subnet_id: str) -> None:
    ec2().delete_subnet(SubnetId=subnet_id)


def delete_internet_gateway(env: Env, gateway_id: str) -> None:
    client = ec2()
    for attachment in client.describe_internet_gateways(InternetGatewayIds=[gateway_id])["InternetGateways"][0][
            "Attachments"]:
        client.detach_internet_gateway(InternetGatewayId=gateway_id, VpcId=attachment["VpcId"])
    client.delete_internet_gateway(InternetGatewayId=gateway_id)


def delete_route_table(env: Env, table_id: str) -> None:
    client = ec2()
    for association in client.describe_route_tables(RouteTableIds=[table_id])["RouteTables"][0]["Associations"]:
        if not association.get("Main"):
            client.disassociate_route_table(AssociationId=association["RouteTableAssociationId"])
    client.delete_route_table(RouteTableId=table_id)


def delete_nat_gateway(env: Env, gateway_id: str) -> None:
    ec2().delete_nat_gateway(NatGatewayId=gateway_id)


def delete_network_interface(env: Env, eni: str) -> None:
    ec2().delete_network_interface(NetworkInterfaceId=eni)


def delete_volume(env: Env, volume: str) -> None:
    client = ec2()
    for attachment in client.describe_volumes(VolumeIds=[volume])["Volumes"][0].get("Attachments") or []:
        client.detach_volume(VolumeId=volume, InstanceId=attachment["InstanceId"], Force=True)
    client.delete_volume(VolumeId=volume)


def delete_route(env: Env, route: str) -> None:
    table, _, destination = route.partition(":")
    ec2().delete_route(RouteTableId=table, DestinationCidrBlock=destination)


# ---------------------------------------------------------------- the subjects

VPC_NODE = {"node_templates": {"vpc": {"type": "aws.ec2.VPC",
                                       "properties": {**FAST, "cidr_block": "10.30.0.0/16"}}}}
GROUP_NODE = {"node_templates": {"group": {"type": "aws.ec2.SecurityGroup", "properties": FAST}}}
NETWORK_NODES = {"node_templates": {  # a VPC with a subnet, an attached gateway and a table of the subnet
    **VPC_NODE["node_templates"],
    "subnet": {"type": "aws.ec2.Subnet", "properties": {**FAST, "cidr_block": "10.30.1.0/24"},
               "relationships": [{"type": "aws.relationships.contained_in_vpc", "target": "vpc"}]},
    "gateway": {"type": "aws.ec2.InternetGateway", "properties": FAST,
                "relationships": [{"type": "orchestrator.relationships.connected_to", "target": "vpc"}]},
    "table": {"type": "aws.ec2.RouteTable", "properties": FAST,
              "relationships": [{"type": "aws.relationships.contained_in_vpc", "target": "vpc"},
                                {"type": "orchestrator.relationships.connected_to", "target": "subnet"}]},
}}


def aws_subject(type_name: str, lister: str, **fields: Any) -> Subject:
    fields.setdefault("properties", FAST)
    return Subject(type_name, kind(lister), list_leftovers=everything, cleanup=sweep, **fields)


SUBJECTS = [
    aws_subject(
        "aws.ec2.KeyPair", "key_pairs",
        properties=lambda env: {**FAST, "private_key_path": str(env.tmp_path / f"{env.deployment}.pem")},
        invalid_properties={**FAST, "private_key_path": "/dev/null/key.pem"},  # cannot be written
        adopt=adopt_key_pair, delete=delete_key_pair),
    aws_subject(  # without a key file, a key pair found by tag after a crash is replaced, not adopted
        "aws.ec2.KeyPair", "key_pairs", name="aws.ec2.KeyPair (no key file)",
        invalid_properties={**FAST, "use_external_resource": True, "resource_id": "cf-no-such-key"},
        adopt=adopt_key_pair, delete=delete_key_pair),
    aws_subject(
        "aws.ec2.SecurityGroup", "security_groups",
        properties={**FAST, "rules": [RULE]},
        invalid_properties={**FAST, "group_name": "default"},  # every VPC has one (a rule without a peer: validate)
        adopt=adopt_security_group, delete=delete_security_group),
    aws_subject(
        "aws.ec2.SecurityGroupRule", "security_group_rules",
        properties={**FAST, **RULE},
        invalid_properties={**FAST, **RULE, "group_id": "sg-00000000"},  # no such group
        blueprint=GROUP_NODE,
        relationships=[{"type": "aws.relationships.rule_contained_in_security_group", "target": "group"}],
        delete=revoke_rule),
    aws_subject(
        "aws.ec2.SecurityGroupRules", "security_group_rules",
        properties={**FAST, "rules": [RULE]},  # the suite counts one resource per node; two: tests/cloudify
        invalid_properties={**FAST, "rules": [RULE], "group_id": "sg-00000000"},  # no such group
        blueprint=GROUP_NODE,
        relationships=[{"type": "aws.relationships.rule_contained_in_security_group", "target": "group"}],
        delete=revoke_rule),
    aws_subject(
        "aws.ec2.Instance", "instances",
        properties={**FAST, "image_id": AMI, "instance_type": "t3.nano"},
        invalid_properties={**FAST, "image_id": "ami-00000000"},
        adopt=adopt_instance, delete=delete_instance),
    aws_subject(
        "aws.ec2.Instance", "instances", name="aws.ec2.Instance (key pair, security group)",
        properties={**FAST, "image_id": AMI, "instance_type": "t3.nano"},
        blueprint={"node_templates": {"key": {"type": "aws.ec2.KeyPair", "properties": FAST},
                                      "group": {"type": "aws.ec2.SecurityGroup", "properties": FAST}}},
        relationships=[{"type": "aws.relationships.instance_uses_keypair", "target": "key"},
                       {"type": "aws.relationships.instance_in_security_group", "target": "group"}],
        delete=delete_instance),
    aws_subject(
        "aws.ec2.ElasticIP", "addresses",
        invalid_properties={**FAST, "use_external_resource": True, "resource_id": "eipalloc-00000000"},
        adopt=adopt_address, delete=delete_address),
    aws_subject(
        "aws.ec2.VPC", "vpcs",
        properties={**FAST, "cidr_block": "10.10.0.0/16"},
        invalid_properties={**FAST, "cidr_block": "10.0.0.0/8"},  # larger than AWS allows
        adopt=adopt_vpc, delete=delete_vpc),
    aws_subject(
        "aws.ec2.Subnet", "subnets",
        properties={**FAST, "cidr_block": "10.30.1.0/24"},
        invalid_properties={**FAST, "cidr_block": "192.168.1.0/24"},  # outside the VPC
        blueprint=VPC_NODE,
        relationships=[{"type": "aws.relationships.contained_in_vpc", "target": "vpc"}],
        adopt=adopt_subnet, delete=delete_subnet),
]

SUBJECTS += [
    aws_subject(
        "aws.ec2.InternetGateway", "internet_gateways",
        blueprint=VPC_NODE, relationships=[{"type": "orchestrator.relationships.connected_to", "target": "vpc"}],
        invalid_properties={**FAST, "use_external_resource": True, "resource_id": "igw-00000000"},
        adopt=adopt_internet_gateway, delete=delete_internet_gateway),
    aws_subject(
        "aws.ec2.RouteTable", "route_tables",
        blueprint={"node_templates": {k: v for k, v in NETWORK_NODES["node_templates"].items()
                                      if k in ("vpc", "subnet")}},
        relationships=[{"type": "aws.relationships.contained_in_vpc", "target": "vpc"},
                       {"type": "orchestrator.relationships.connected_to", "target": "subnet"}],
        invalid_properties={**FAST, "vpc_id": "vpc-00000000"},
        adopt=adopt_route_table, delete=delete_route_table),
    aws_subject(
        "aws.ec2.NatGateway", "nat_gateways",
        blueprint={"node_templates": {**{k: v for k, v in NETWORK_NODES["node_templates"].items()
                                         if k in ("vpc", "subnet")},
                                      "address": {"type": "aws.ec2.ElasticIP", "properties": FAST}}},
        relationships=[{"type": "orchestrator.relationships.depends_on", "target": "subnet"},
                       {"type": "orchestrator.relationships.depends_on", "target": "address"}],
        invalid_properties={**FAST, "subnet_id": "subnet-00000000"},
        adopt=adopt_nat_gateway, delete=delete_nat_gateway),
    aws_subject(
        "aws.ec2.NetworkInterface", "network_interfaces",
        blueprint={"node_templates": {**{k: v for k, v in NETWORK_NODES["node_templates"].items()
                                         if k in ("vpc", "subnet")},
                                      "group": {"type": "aws.ec2.SecurityGroup", "properties": FAST,
                                                "relationships": [{"type": "aws.relationships.contained_in_vpc",
                                                                   "target": "vpc"}]}}},
        relationships=[{"type": "orchestrator.relationships.depends_on", "target": "subnet"},
                       {"type": "orchestrator.relationships.depends_on", "target": "group"}],
        invalid_properties={**FAST, "subnet_id": "subnet-00000000"},
        adopt=adopt_network_interface, delete=delete_network_interface),
    aws_subject(
        "aws.ec2.Volume", "volumes",
        properties={**FAST, "size": 1, "availability_zone": "us-east-1a"},
        invalid_properties={**FAST, "use_external_resource": True, "resource_id": "vol-00000000"},
        adopt=adopt_volume, delete=delete_volume),
    Subject(
        "aws.ec2.Volume", kind("volumes"), name="aws.ec2.Volume (attached)", cleanup=sweep,
        properties={**FAST, "size": 1},
        blueprint={"node_templates": {"vm": {"type": "aws.ec2.Instance", "properties": {
            **FAST, "image_id": AMI, "instance_type": "t3.nano"}}}},
        relationships=[{"type": "aws.relationships.volume_attached_to_instance", "target": "vm"}],
        list_leftovers=everything, delete=delete_volume),
    Subject("aws.ec2.Image", lambda env: [], list_leftovers=everything, cleanup=sweep, expected=0,  # a lookup
            properties={**FAST, "image_id": AMI},
            invalid_properties={**FAST, "owners": ["123456789012"], "filters": {"name": "no-such-image-*"}}),
    Subject("aws.ec2.Route", routes, list_leftovers=everything, cleanup=sweep,
            properties={**FAST, "destination_cidr_block": "0.0.0.0/0"},
            invalid_properties={**FAST, "destination_cidr_block": "300.0.0.0/0"},
            blueprint=NETWORK_NODES,
            relationships=[{"type": "orchestrator.relationships.contained_in", "target": "table"},
                           {"type": "orchestrator.relationships.connected_to", "target": "gateway"}],
            delete=delete_route),
]

TestAwsConformance = conformance_tests(*SUBJECTS, plugins=PLUGINS, fixtures=["aws_env"])


def test_every_aws_node_type_has_a_subject() -> None:
    from orchestrator.plugins import get_plugin_manager

    pm = get_plugin_manager(PLUGINS, entry_points=False, env={})
    node_types = {t for source in pm.type_sources for t in (source.sections.get("node_types") or {})}
    assert {t for t in node_types if t.startswith("aws.")} == {s.type for s in SUBJECTS}


def test_a_rule_that_existed_before_is_left_alone(aws_env: Any, orch: Any) -> None:
    """Found with the rule's create-twice fix: a Duplicate answer is not always our own rule."""
    import uuid

    orch.use(*PLUGINS)
    client = ec2()
    group_id = client.create_security_group(GroupName=f"pre-{uuid.uuid4().hex[:8]}", Description="x")["GroupId"]
    permission = {"IpProtocol": "tcp", "FromPort": 443, "ToPort": 443, "IpRanges": [{"CidrIp": RULE["cidr_ip"]}]}
    client.authorize_security_group_ingress(GroupId=group_id, IpPermissions=[permission])
    rule = orch.node("aws.ec2.SecurityGroupRule", {**FAST, **RULE, "group_id": group_id},
                     id=f"r{uuid.uuid4().hex[:8]}")
    rule.call("create")
    assert rule.runtime_properties["preexisting"] is True
    rule.call("delete")
    (group,) = client.describe_security_groups(GroupIds=[group_id])["SecurityGroups"]
    assert [p["FromPort"] for p in group["IpPermissions"]] == [443]
    client.delete_security_group(GroupId=group_id)


def test_the_one_kind_listers_agree_with_list_resources(aws_env: Any) -> None:
    env = Env("test", "cf-listers", Path("."), "subject", Fixtures())
    adopt_key_pair(env), adopt_instance(env), adopt_subnet(env)
    try:
        assert {name: kind(name)(env) for name in KINDS} == list_resources(env.deployment)
    finally:
        sweep(env)
    assert not leaked(env.deployment)
