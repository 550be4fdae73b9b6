"""The ``aws_volume`` plugin: ``aws.ec2.Volume`` (EBS) and its attachment to an instance.

A volume is made in ``availability_zone`` (or the zone of the instance or subnet it is
related to) with ``size`` GiB, and waited for on ``configure``. A volume connected to an
``aws.ec2.Instance`` with ``aws.relationships.volume_attached_to_instance`` is attached
once both exist (``device``, on the relationship's properties) and detached by unlink;
delete waits until it is free, then until it is gone.

Day 2: tags change in place; ``size`` grows in place (``ModifyVolume``; AWS never shrinks
a volume, so a smaller size is refused at update); the zone and type replace it.
``check_drift`` compares the size.
"""

from __future__ import annotations

from typing import Any

from orchestrator import NonRecoverableError
from orchestrator.sdk import Plugin, Relationship
from plugins_aws.changes import changed, differs, previous
from plugins_aws.errors import call
from plugins_aws.related import RESOURCE_ID
from plugins_aws.resource import AwsResource, client_for, wait_options
from plugins_aws.schema import replaced, resource_properties

TYPE = "aws.ec2.Volume"
ATTACHED_TO = "aws.relationships.volume_attached_to_instance"
INSTANCE_TYPE = "aws.ec2.Instance"
NOT_FOUND = ("InvalidVolume.NotFound",)

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An EBS volume; attach it with aws.relationships.volume_attached_to_instance.",
            "properties": resource_properties({
                "size": {"type": "integer", "required": False, "constraints": [{"greater_or_equal": 1}],
                         "description": "GiB (required unless external); grows in place."},
                "availability_zone": replaced({"type": "string", "required": False,
                                               "description": "Else the zone of the instance it is attached to."}),
                "volume_type": replaced({"type": "string", "default": "gp3"}),
                "device": {"type": "string", "default": "/dev/sdf",
                           "description": "Where an attachment puts it, unless the relationship says."},
            }),
        },
    },
    "relationships": {
        ATTACHED_TO: {"derived_from": "orchestrator.relationships.connected_to",
                      "description": "Volume -> Instance: attached once both exist, as properties.device.",
                      "properties": {"device": {"type": "string", "required": False,
                                                "description": "Else the volume's device property."}}},
    },
}


class Volume(AwsResource):
    kind = "volume"
    tag_resource_types = ("volume",)
    api = ("describe_volumes", "VolumeIds", "Volumes", NOT_FOUND)

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["VolumeId"]

    def is_gone(self, resource: dict[str, Any]) -> bool:
        return resource.get("State") in ("deleting", "deleted", "error")

    def state_of(self, resource: dict[str, Any]) -> str:
        return str(resource.get("State"))

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        return {"volume_id": resource["VolumeId"], "size": resource.get("Size"),
                "availability_zone": resource.get("AvailabilityZone")}

    def zone(self) -> str | None:
        if self.properties.get("availability_zone"):
            return str(self.properties["availability_zone"])
        from plugins_aws.instance import describe_instance

        for target in self.targets(INSTANCE_TYPE):
            found = describe_instance(self.client, target.instance.runtime_properties.get(RESOURCE_ID) or "")
            zone = ((found or {}).get("Placement") or {}).get("AvailabilityZone")
            if zone:
                return str(zone)
        return None

    def create_new(self) -> dict[str, Any]:
        size, zone = self.properties.get("size"), self.zone()
        if not size or not zone:
            raise NonRecoverableError("volume: size and availability_zone are required (the zone may come from "
                                      f"the {INSTANCE_TYPE} it is attached to), unless use_external_resource is true")
        return call(self.client.create_volume, Size=int(size), AvailabilityZone=zone,
                    VolumeType=self.properties.get("volume_type", "gp3"), TagSpecifications=self.tag_specifications())

    def configure(self) -> None:
        rid = self.require_id()
        self.wait(lambda: (self.describe(rid) or {}).get("State") in ("available", "in-use"),
                  f"volume {rid} to be available")

    def delete_existing(self, resource_id: str) -> None:
        self.wait(lambda: (self.describe(resource_id) or {}).get("State", "deleted") != "in-use",
                  f"volume {resource_id} to be detached")
        call(self.client.delete_volume, ignore=NOT_FOUND, VolumeId=resource_id)
        self.wait(lambda: (self.describe(resource_id) or {}).get("State", "deleted") == "deleted",
                  f"volume {resource_id} to be deleted")

    def update(self) -> None:
        super().update()
        if changed(self.ctx.changes, "size") and not self.external:
            old, new = previous(self.properties, self.ctx.changes, "size"), self.properties.get("size")
            if old and new and int(new) < int(old):
                raise NonRecoverableError(f"volume {self.resource_id}: AWS cannot shrink a volume ({old} -> {new} "
                                          "GiB); declare a new volume instead")
            call(self.client.modify_volume, VolumeId=self.require_id(), Size=int(new))
            self.logger.info("volume %s grows to %s GiB", self.resource_id, new)

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        wanted = self.properties.get("size")
        if self.external or not wanted or int(wanted) == resource.get("Size"):
            return {}
        return {"size": differs(int(wanted), resource.get("Size"))}


class Attachment(Relationship):
    """Volume (source) -> Instance (target)."""

    def _ids(self) -> tuple[Any, str, str]:
        client = client_for(self.source.node.properties)
        volume = self.source.instance.runtime_properties.get(RESOURCE_ID)
        instance = self.target.instance.runtime_properties.get(RESOURCE_ID)
        if not volume or not instance:
            raise NonRecoverableError(f"cannot attach: volume {volume}, instance {instance}")
        return client, volume, instance

    def establish(self) -> None:
        client, volume, instance = self._ids()
        device = str(self.properties.get("device") or self.source.node.properties.get("device") or "/dev/sdf")

        def attachment() -> dict[str, Any] | None:
            """The volume's attachment to the instance, if it has one (attaching or attached)."""
            found = (call(client.describe_volumes, VolumeIds=[volume])["Volumes"] or [{}])[0]
            return next((a for a in found.get("Attachments") or [] if a.get("InstanceId") == instance), None)

        if attachment() is None:
            call(client.attach_volume, VolumeId=volume, InstanceId=instance, Device=device)
        self.wait_until(lambda: (attachment() or {}).get("State") == "attached",
                        f"volume {volume} to be attached to {instance}", **wait_options(self.source.node.properties))
        self.source.instance.runtime_properties.update({"instance_id": instance, "device": device})
        self.logger.info("volume %s attached to %s as %s", volume, instance, device)

    def unlink(self) -> None:
        client, volume, instance = self._ids()
        call(client.detach_volume, ignore=(*NOT_FOUND, "IncorrectState", "InvalidAttachment.NotFound"),
             VolumeId=volume, InstanceId=instance)
        self.source.instance.runtime_properties.pop("instance_id", None)
        self.logger.info("volume %s detached from %s", volume, instance)


plugin = Plugin(TYPES, {TYPE: Volume, ATTACHED_TO: Attachment})
