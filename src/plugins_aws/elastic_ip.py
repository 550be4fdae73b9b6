"""The ``aws_elastic_ip`` plugin: ``aws.ec2.ElasticIP`` and its association with an instance.

Allocated on create, released on delete; the association is the relationship's job
(``establish`` / ``unlink``), in either direction: an instance connected to the
address (recommended: the instance, and anything contained in it, is finished only
once the address is attached) or the address connected to an instance. The instance's
``public_ip_address`` (and a derived ``docker_host`` url) follow the association.

Day 2: an address changes only its tags in place; the association moves with the
relationships (the engine unlinks the old one and establishes the new one), and
``check_drift`` reports an address released or associated elsewhere than recorded (not
one AWS let go of when its instance was terminated: healing the instance re-associates it).
"""

from __future__ import annotations

from typing import Any

from orchestrator import EntityContext, NonRecoverableError
from orchestrator.sdk import Plugin, Relationship
from plugins_aws.changes import differs
from plugins_aws.docker_host import docker_host
from plugins_aws.errors import call
from plugins_aws.instance import GONE_STATES, describe_instance
from plugins_aws.related import RESOURCE_ID
from plugins_aws.resource import AwsResource, client_for, wait_options
from plugins_aws.schema import replaced, resource_properties

TYPE = "aws.ec2.ElasticIP"
INSTANCE_TO_EIP = "aws.relationships.instance_connected_to_elastic_ip"
EIP_TO_INSTANCE = "aws.relationships.elastic_ip_connected_to_instance"
EIP_TO_INTERFACE = "aws.relationships.elastic_ip_connected_to_network_interface"
NOT_FOUND = ("InvalidAllocationID.NotFound", "InvalidAddress.NotFound")
ASSOCIATION_NOT_FOUND = ("InvalidAssociationID.NotFound",)

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An Elastic IP address; associate it through a relationship.",
            "properties": resource_properties({
                "domain": replaced({"type": "string", "default": "vpc", "constraints": [{"valid_values": ["vpc"]}]}),
            }),
        },
    },
    "relationships": {
        INSTANCE_TO_EIP: {"derived_from": "orchestrator.relationships.connected_to",
                          "description": "Instance -> ElasticIP: the address is attached once the "
                                         "instance runs, before the instance counts as started."},
        EIP_TO_INSTANCE: {"derived_from": "orchestrator.relationships.connected_to",
                          "description": "ElasticIP -> Instance: the address is attached once "
                                         "both exist."},
        EIP_TO_INTERFACE: {"derived_from": "orchestrator.relationships.connected_to",
                           "description": "ElasticIP -> NetworkInterface: the address is attached to the "
                                          "interface (and so to the instance that uses it)."},
    },
}


class ElasticIP(AwsResource):
    kind = "elastic IP"
    tag_resource_types = ("elastic-ip",)

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        return describe_address(self.client, resource_id)

    def find_tagged(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return call(self.client.describe_addresses, Filters=filters)["Addresses"]

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["AllocationId"]

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"allocation_id": resource["AllocationId"], "public_ip": resource["PublicIp"]}

    def create_new(self) -> dict[str, Any]:
        return call(self.client.allocate_address, Domain=self.properties.get("domain", "vpc"),
                    TagSpecifications=self.tag_specifications())

    def delete_existing(self, resource_id: str) -> None:
        address = self.describe(resource_id)
        if address is None:
            return
        if address.get("AssociationId"):  # unlink did not run (or was interrupted)
            call(self.client.disassociate_address, AssociationId=address["AssociationId"],
                 ignore=ASSOCIATION_NOT_FOUND)
        call(self.client.release_address, AllocationId=resource_id, ignore=NOT_FOUND,
             retry_codes=("InvalidIPAddress.InUse",), retry_after=wait_options(self.properties)["max_interval"])

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        """The instance the address is attached to, against the one ``establish`` recorded.

        An address AWS let go of because its instance was terminated has not drifted itself:
        the instance is gone, and healing it associates the same address with the new one
        (reporting the address would have heal release it and allocate another).
        """
        if self.runtime.get("network_interface_id"):
            recorded, actual = self.runtime["network_interface_id"], resource.get("NetworkInterfaceId") or None
            return {} if recorded == actual else {"association": differs(recorded, actual)}
        recorded, actual = self.runtime.get("instance_id") or None, resource.get("InstanceId") or None
        if recorded == actual or (actual is None and recorded and self.instance_gone(recorded)):
            return {}
        return {"association": differs(recorded, actual)}

    def instance_gone(self, instance_id: str) -> bool:
        instance = describe_instance(self.client, instance_id)
        return instance is None or instance["State"]["Name"] in GONE_STATES


def describe_address(client: Any, resource_id: str) -> dict[str, Any] | None:
    """An address by allocation id (``eipalloc-...``) or by public IP; None if unknown."""
    key = {"AllocationIds": [resource_id]} if resource_id.startswith("eipalloc-") else {"PublicIps": [resource_id]}
    found = call(client.describe_addresses, ignore=NOT_FOUND, **key)
    addresses = (found or {}).get("Addresses") or []
    return addresses[0] if addresses else None


def _show_address(instance: EntityContext, public_ip: str | None) -> None:
    """Make the instance's runtime properties show (or stop showing) the elastic IP."""
    runtime = instance.instance.runtime_properties
    if public_ip:
        runtime["elastic_ip"] = runtime["public_ip_address"] = public_ip
    else:
        runtime.pop("elastic_ip", None)
    host = docker_host(instance.node.properties.get("docker_host"), runtime.get("public_ip_address"),
                       runtime.get("private_ip_address"))
    if host is not None:
        runtime["docker_host"] = host


class Association(Relationship):
    """Either direction: instance -> address or address -> instance."""

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        if TYPE in self.source.node.type_hierarchy:
            self.eip, self.host = self.source, self.target
        elif TYPE in self.target.node.type_hierarchy:
            self.eip, self.host = self.target, self.source
        else:
            raise NonRecoverableError(f"{ctx.describe()}: neither end is an {TYPE}")
        self.client = client_for(self.eip.node.properties)
        self.runtime = self.eip.instance.runtime_properties

    @property
    def _key(self) -> tuple[str, str]:
        """(the API's name for what the address goes to, the runtime key recording it)."""
        from plugins_aws.interface import TYPE as INTERFACE_TYPE

        if INTERFACE_TYPE in self.host.node.type_hierarchy:
            return "NetworkInterfaceId", "network_interface_id"
        return "InstanceId", "instance_id"

    def establish(self) -> None:
        allocation_id = self.runtime.get(RESOURCE_ID)
        host_id = self.host.instance.runtime_properties.get(RESOURCE_ID)
        key, recorded = self._key
        if not allocation_id or not host_id:
            raise NonRecoverableError(f"cannot associate: allocation id {allocation_id}, "
                                      f"{recorded.replace('_', ' ')} {host_id}")
        address = describe_address(self.client, allocation_id)
        if address is None:
            raise NonRecoverableError(f"elastic IP {allocation_id} no longer exists")
        if address.get(key) == host_id and address.get("AssociationId"):
            association_id = address["AssociationId"]  # a repeated establish
        else:
            association_id = call(self.client.associate_address, AllocationId=allocation_id,
                                  AllowReassociation=False, **{key: host_id},
                                  retry_codes=("InvalidInstanceID.NotFound", "InvalidInstanceID"),
                                  retry_after=wait_options(self.eip.node.properties)["max_interval"])["AssociationId"]
        self.runtime.update({"association_id": association_id, recorded: host_id})
        _show_address(self.host, address["PublicIp"])
        self.logger.info("associated %s (%s) with %s", address["PublicIp"], allocation_id, host_id)

    def unlink(self) -> None:
        association_id = self.runtime.get("association_id")
        host_id = self.host.instance.runtime_properties.get(RESOURCE_ID)
        key, recorded = self._key
        if not association_id and self.runtime.get(RESOURCE_ID):  # establish may have died before saving it
            address = describe_address(self.client, self.runtime[RESOURCE_ID]) or {}
            if host_id and address.get(key) == host_id:
                association_id = address.get("AssociationId")
        if association_id:
            call(self.client.disassociate_address, AssociationId=association_id, ignore=ASSOCIATION_NOT_FOUND)
            self.logger.info("disassociated %s from %s", self.runtime.get("public_ip"), host_id)
        self.runtime.pop("association_id", None)
        self.runtime.pop(recorded, None)
        _show_address(self.host, None)


plugin = Plugin(TYPES, {TYPE: ElasticIP, INSTANCE_TO_EIP: Association, EIP_TO_INSTANCE: Association,
                        EIP_TO_INTERFACE: Association})
