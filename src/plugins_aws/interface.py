"""The ``aws_network_interface`` plugin: ``aws.ec2.NetworkInterface`` (an ENI).

Made in its subnet with its security groups (related ``aws.ec2.Subnet`` and
``aws.ec2.SecurityGroup`` nodes, or ``subnet_id`` and ``security_group_ids``). An
``aws.ec2.Instance`` related to interfaces launches with them (device 0, 1, ... in the
order of its relationships) instead of a subnet and groups of its own; an
``aws.ec2.ElasticIP`` connected to one (``aws.relationships.elastic_ip_connected_to_network_interface``)
is associated with it. Delete waits until the instance using it has let it go.

Day 2: tags and ``description`` change in place, ``security_group_ids`` too (the listed and
the related groups); the subnet replaces it. ``check_drift`` compares the groups.
"""

from __future__ import annotations

from typing import Any

from orchestrator import NonRecoverableError
from orchestrator.sdk import Plugin
from plugins_aws.changes import changed, differs
from plugins_aws.errors import call
from plugins_aws.network import SUBNET_TYPE
from plugins_aws.related import one_target_id, target_ids
from plugins_aws.resource import AwsResource
from plugins_aws.schema import replaced, resource_properties

TYPE = "aws.ec2.NetworkInterface"
SECURITY_GROUP_TYPE = "aws.ec2.SecurityGroup"
NOT_FOUND = ("InvalidNetworkInterfaceID.NotFound",)

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "A network interface (ENI) in a subnet, with security groups.",
            "properties": resource_properties({
                "subnet_id": replaced({"type": "string", "required": False,
                                       "description": "Its subnet, unless related to an aws.ec2.Subnet."}),
                "security_group_ids": {"type": "list", "entry_schema": "string", "default": [],
                                       "description": "Groups, besides every related aws.ec2.SecurityGroup."},
                "description": {"type": "string", "required": False},
                "private_ip_address": replaced({"type": "string", "required": False,
                                                "description": "A fixed private address in the subnet."}),
            }),
        },
    },
}


class NetworkInterface(AwsResource):
    kind = "network interface"
    tag_resource_types = ("network-interface",)
    api = ("describe_network_interfaces", "NetworkInterfaceIds", "NetworkInterfaces", NOT_FOUND)

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["NetworkInterfaceId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"network_interface_id": resource["NetworkInterfaceId"], "subnet_id": resource.get("SubnetId"),
                "vpc_id": resource.get("VpcId"), "private_ip_address": resource.get("PrivateIpAddress")}

    def groups(self) -> list[str]:
        return list(dict.fromkeys([*(self.properties.get("security_group_ids") or []),
                                   *target_ids(self.ctx, SECURITY_GROUP_TYPE)]))

    def create_new(self) -> dict[str, Any]:
        subnet = self.properties.get("subnet_id") or one_target_id(self.ctx, SUBNET_TYPE, "subnet")
        if not subnet:
            raise NonRecoverableError(f"network interface: set subnet_id or relate it to an {SUBNET_TYPE}")
        optional = {"Groups": self.groups() or None, "Description": self.properties.get("description"),
                    "PrivateIpAddress": self.properties.get("private_ip_address")}
        return call(self.client.create_network_interface, SubnetId=subnet,
                    TagSpecifications=self.tag_specifications(),
                    **{k: v for k, v in optional.items() if v})["NetworkInterface"]

    def delete_existing(self, resource_id: str) -> None:
        self.delete_when_free(self.client.delete_network_interface, f"network interface {resource_id}", NOT_FOUND,
                              busy=("InvalidNetworkInterface.InUse", "DependencyViolation"),
                              NetworkInterfaceId=resource_id)

    def update(self) -> None:
        super().update()
        if self.external:
            return
        rid = self.require_id()
        if changed(self.ctx.changes, "description"):
            call(self.client.modify_network_interface_attribute, NetworkInterfaceId=rid,
                 Description={"Value": self.properties.get("description") or ""})
        if changed(self.ctx.changes, "security_group_ids") and self.groups():
            call(self.client.modify_network_interface_attribute, NetworkInterfaceId=rid, Groups=self.groups())

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        wanted = sorted(self.groups())
        actual = sorted(g["GroupId"] for g in resource.get("Groups") or [])
        if self.external or not wanted or wanted == actual:
            return {}
        return {"security_group_ids": differs(wanted, actual)}


plugin = Plugin(TYPES, {TYPE: NetworkInterface})
