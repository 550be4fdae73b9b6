"""The ``aws_elastic_ip`` plugin: ``aws.ec2.ElasticIP`` and its association with an instance.

Allocated on create, released on delete; the association is the relationship's job
(``establish`` / ``unlink``), in either direction: an instance connected to the
address (recommended: the instance, and anything contained in it, is finished only
once the address is attached) or the address connected to an instance. The instance's
``public_ip_address`` (and a derived ``docker_host`` url) follow the association.
"""

from __future__ import annotations

from typing import Any

from orchestrator import NonRecoverableError, hookimpl
from plugins_aws.client import ec2_client
from plugins_aws.docker_host import docker_host
from plugins_aws.errors import call
from plugins_aws.related import RESOURCE_ID
from plugins_aws.resource import Resource
from plugins_aws.schema import resource_properties
from plugins_aws.waiting import Waits

TYPE = "aws.ec2.ElasticIP"
INSTANCE_TO_EIP = "aws.relationships.instance_connected_to_elastic_ip"
EIP_TO_INSTANCE = "aws.relationships.elastic_ip_connected_to_instance"
NOT_FOUND = ("InvalidAllocationID.NotFound", "InvalidAddress.NotFound")
ASSOCIATION_NOT_FOUND = ("InvalidAssociationID.NotFound",)

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An Elastic IP address; associate it through a relationship.",
            "properties": resource_properties({
                "domain": {"type": "string", "default": "vpc", "constraints": [{"valid_values": ["vpc"]}]},
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
    },
}


class ElasticIP(Resource):
    kind = "elastic IP"
    tag_resource_types = ("elastic-ip",)

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        return describe_address(self.client, resource_id)

    def find(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
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
             retry_codes=("InvalidIPAddress.InUse",), retry_after=self.waits.interval)


def describe_address(client: Any, resource_id: str) -> dict[str, Any] | None:
    """An address by allocation id (``eipalloc-...``) or by public IP; None if unknown."""
    key = {"AllocationIds": [resource_id]} if resource_id.startswith("eipalloc-") else {"PublicIps": [resource_id]}
    found = call(client.describe_addresses, ignore=NOT_FOUND, **key)
    addresses = (found or {}).get("Addresses") or []
    return addresses[0] if addresses else None


def _sides(ctx: Any) -> tuple[Any, Any]:
    """(address side, instance side) of the relationship, whichever way it points."""
    if TYPE in ctx.source.node.type_hierarchy:
        return ctx.source, ctx.target
    if TYPE in ctx.target.node.type_hierarchy:
        return ctx.target, ctx.source
    raise NonRecoverableError(f"{ctx.source.instance.id} -> {ctx.target.instance.id}: neither end is an {TYPE}")


def _show_address(instance: Any, public_ip: str | None) -> None:
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


@hookimpl
def register_types() -> dict[str, Any]:
    return TYPES


@hookimpl
def create(ctx: Any) -> None:
    ElasticIP(ctx).create()


@hookimpl
def delete(ctx: Any) -> None:
    ElasticIP(ctx).delete()


@hookimpl
def establish(ctx: Any) -> None:
    eip, instance = _sides(ctx)
    client = ec2_client(eip.node.properties.get("client_config"))
    runtime = eip.instance.runtime_properties
    allocation_id, instance_id = runtime.get(RESOURCE_ID), instance.instance.runtime_properties.get(RESOURCE_ID)
    if not allocation_id or not instance_id:
        raise NonRecoverableError(f"cannot associate: allocation id {allocation_id}, instance id {instance_id}")
    address = describe_address(client, allocation_id)
    if address is None:
        raise NonRecoverableError(f"elastic IP {allocation_id} no longer exists")
    if address.get("InstanceId") == instance_id and address.get("AssociationId"):
        association_id = address["AssociationId"]  # a repeated establish
    else:
        waits = Waits(eip.node.properties)
        association_id = call(client.associate_address, AllocationId=allocation_id,
                              InstanceId=instance_id, AllowReassociation=False,
                              retry_codes=("InvalidInstanceID.NotFound", "InvalidInstanceID"),
                              retry_after=waits.interval)["AssociationId"]
    runtime.update({"association_id": association_id, "instance_id": instance_id})
    _show_address(instance, address["PublicIp"])
    ctx.logger.info("associated %s (%s) with %s", address["PublicIp"], allocation_id, instance_id)


@hookimpl
def unlink(ctx: Any) -> None:
    eip, instance = _sides(ctx)
    client = ec2_client(eip.node.properties.get("client_config"))
    runtime = eip.instance.runtime_properties
    association_id = runtime.get("association_id")
    instance_id = instance.instance.runtime_properties.get(RESOURCE_ID)
    if not association_id and runtime.get(RESOURCE_ID):  # establish may have died before saving it
        address = describe_address(client, runtime[RESOURCE_ID]) or {}
        if instance_id and address.get("InstanceId") == instance_id:
            association_id = address.get("AssociationId")
    if association_id:
        call(client.disassociate_address, AssociationId=association_id, ignore=ASSOCIATION_NOT_FOUND)
        ctx.logger.info("disassociated %s from %s", runtime.get("public_ip"), instance_id)
    runtime.pop("association_id", None)
    runtime.pop("instance_id", None)
    _show_address(instance, None)
