"""The ``aws_network`` plugin: ``aws.ec2.VPC`` and ``aws.ec2.Subnet``.

Enough for a blueprint to build its own network; a subnet (or a security group) finds
its VPC through any relationship to an ``aws.ec2.VPC`` node, or ``vpc_id``. Deletes
wait while AWS answers ``DependencyViolation`` (instances still terminating).

Day 2: a VPC's DNS attributes and a subnet's ``map_public_ip_on_launch`` (and both
tags) change in place; CIDR blocks, tenancy, VPC and zone replace them. ``check_drift``
compares the same settings (a VPC's DNS attributes only when declared: one call each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError
from orchestrator.sdk import Plugin, Problem
from plugins_aws.changes import changed, differs
from plugins_aws.errors import call
from plugins_aws.related import one_target_id
from plugins_aws.resource import AwsResource
from plugins_aws.schema import replaced, resource_properties

VPC_TYPE = "aws.ec2.VPC"
SUBNET_TYPE = "aws.ec2.Subnet"
CONTAINED_IN_VPC = "aws.relationships.contained_in_vpc"

TYPES: dict[str, Any] = {
    "node_types": {
        VPC_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A VPC.",
            "properties": resource_properties({
                "cidr_block": replaced({"type": "string", "required": False,
                                        "description": "e.g. 10.0.0.0/16 (required unless external)."}),
                "instance_tenancy": replaced({"type": "string", "default": "default",
                                              "constraints": [{"valid_values": ["default", "dedicated"]}]}),
                "enable_dns_support": {"type": "boolean", "required": False},
                "enable_dns_hostnames": {"type": "boolean", "required": False},
            }),
        },
        SUBNET_TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A subnet of a VPC (vpc_id, or contained in an aws.ec2.VPC node).",
            "properties": resource_properties({
                "cidr_block": replaced({"type": "string", "required": False,
                                        "description": "e.g. 10.0.1.0/24 (required unless external)."}),
                "vpc_id": replaced({"type": "string", "required": False}),
                "availability_zone": replaced({"type": "string", "required": False}),
                "map_public_ip_on_launch": {"type": "boolean", "default": False},
            }),
        },
    },
    "relationships": {
        CONTAINED_IN_VPC: {"derived_from": "orchestrator.relationships.contained_in",
                           "description": "A subnet or security group lives in the target VPC."},
    },
}


DNS_ATTRIBUTES = {"enable_dns_support": "EnableDnsSupport", "enable_dns_hostnames": "EnableDnsHostnames"}


class _Cidr:
    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        props = node.properties
        if not props.get("use_external_resource") and not props.get("cidr_block"):
            return ["cidr_block is required (unless use_external_resource is true)"]
        return []


def _require(properties: Any, name: str, kind: str) -> Any:
    value = properties.get(name)
    if not value:
        raise NonRecoverableError(f"{kind}: {name} is required (unless use_external_resource is true)")
    return value


class VPC(_Cidr, AwsResource):
    kind = "VPC"
    tag_resource_types = ("vpc",)
    api = ("describe_vpcs", "VpcIds", "Vpcs", ("InvalidVpcID.NotFound",))

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["VpcId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"vpc_id": resource["VpcId"], "cidr_block": resource.get("CidrBlock")}

    def create_new(self) -> dict[str, Any]:
        return call(self.client.create_vpc, CidrBlock=_require(self.properties, "cidr_block", "VPC"),
                    InstanceTenancy=self.properties.get("instance_tenancy", "default"),
                    TagSpecifications=self.tag_specifications())["Vpc"]

    def delete_existing(self, resource_id: str) -> None:
        self.delete_when_free(self.client.delete_vpc, f"VPC {resource_id}", ("InvalidVpcID.NotFound",),
                              VpcId=resource_id)

    def configure(self) -> None:
        rid = self.resource_id
        self.wait(lambda: (self.describe(rid) or {}).get("State") == "available", f"VPC {rid} to be available")
        if self.external:
            return
        self.set_dns()

    def set_dns(self, only: tuple[str, ...] = tuple(DNS_ATTRIBUTES)) -> None:
        for prop in only:
            if self.properties.get(prop) is not None:
                call(self.client.modify_vpc_attribute, VpcId=self.resource_id,
                     **{DNS_ATTRIBUTES[prop]: {"Value": bool(self.properties[prop])}})

    def update(self) -> None:
        super().update()
        dns = tuple(p for p in DNS_ATTRIBUTES if changed(self.ctx.changes, p))
        if dns and not self.external:
            self.set_dns(dns)
            self.logger.info("VPC %s: %s set", self.resource_id, ", ".join(dns))

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for prop, attribute in DNS_ATTRIBUTES.items():
            wanted = self.properties.get(prop)
            if wanted is None or self.external:
                continue
            answer = call(self.client.describe_vpc_attribute, VpcId=resource["VpcId"],
                          Attribute=attribute[0].lower() + attribute[1:])
            actual = (answer or {}).get(attribute, {}).get("Value")
            if actual is not None and bool(actual) != bool(wanted):
                found[prop] = differs(bool(wanted), bool(actual))
        return found


class Subnet(_Cidr, AwsResource):
    kind = "subnet"
    tag_resource_types = ("subnet",)
    api = ("describe_subnets", "SubnetIds", "Subnets", ("InvalidSubnetID.NotFound",))

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["SubnetId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"subnet_id": resource["SubnetId"], "vpc_id": resource.get("VpcId"),
                "cidr_block": resource.get("CidrBlock"),
                "availability_zone": resource.get("AvailabilityZone")}

    def create_new(self) -> dict[str, Any]:
        vpc_id = self.properties.get("vpc_id") or one_target_id(self.ctx, VPC_TYPE, "VPC")
        if not vpc_id:
            raise NonRecoverableError(f"subnet: set vpc_id or contain it in an {VPC_TYPE} ({CONTAINED_IN_VPC})")
        zone = self.properties.get("availability_zone")
        return call(self.client.create_subnet, VpcId=vpc_id,
                    CidrBlock=_require(self.properties, "cidr_block", "subnet"),
                    TagSpecifications=self.tag_specifications(),
                    **({"AvailabilityZone": zone} if zone else {}))["Subnet"]

    def delete_existing(self, resource_id: str) -> None:
        self.delete_when_free(self.client.delete_subnet, f"subnet {resource_id}",
                              ("InvalidSubnetID.NotFound",), SubnetId=resource_id)

    def configure(self) -> None:
        rid = self.resource_id
        self.wait(lambda: (self.describe(rid) or {}).get("State") == "available", f"subnet {rid} to be available")
        if self.properties.get("map_public_ip_on_launch") and not self.external:
            call(self.client.modify_subnet_attribute, SubnetId=rid, MapPublicIpOnLaunch={"Value": True})

    def update(self) -> None:
        super().update()
        if changed(self.ctx.changes, "map_public_ip_on_launch") and not self.external:
            wanted = bool(self.properties.get("map_public_ip_on_launch"))
            call(self.client.modify_subnet_attribute, SubnetId=self.require_id(),
                 MapPublicIpOnLaunch={"Value": wanted})
            self.logger.info("subnet %s: map_public_ip_on_launch %s", self.resource_id, wanted)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        wanted, actual = bool(self.properties.get("map_public_ip_on_launch")), bool(resource.get("MapPublicIpOnLaunch"))
        if self.external or wanted == actual:
            return {}
        return {"map_public_ip_on_launch": differs(wanted, actual)}


plugin = Plugin(TYPES, {VPC_TYPE: VPC, SUBNET_TYPE: Subnet})
