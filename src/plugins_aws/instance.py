"""The ``aws_ec2_instance`` plugin: ``aws.ec2.Instance``.

Launching is idempotent twice over: the ``ClientToken`` is derived from deployment id,
instance id and a per-install generation saved *before* RunInstances, so AWS itself
answers a repeated launch with the first instance; and the instance is tagged in the
same call, so a resume that lost the id finds it by tag. ``start``/``stop``/``delete``
act, then look at once (AWS's answer often says the instance is already there); if not,
they wait with ``wait_until``: the operation asks to be retried, first after 0.1 s, the
pause doubling up to ``poll_interval``, for at most ``wait_timeout`` in all. No wait
holds a worker.

Day 2: ``instance_type`` changes in place (stop, modify, start, each wait a retry),
and so do ``security_group_ids``, ``name`` and ``tags`` (the instance and its volumes)
and ``docker_host``; the image, key pair, subnet, user data and launch ``parameters``
cannot change on a launched instance, so they replace it. ``check_drift`` reports an
instance terminated, stopped, of another type, or in other groups than declared. Custom
operations (:mod:`plugins_aws.instance_ops`): ``reboot`` and ``console_output``.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Iterable
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError, RecoverableError
from orchestrator.sdk import Plugin, Problem
from plugins_aws import instance_ops
from plugins_aws.changes import changed, differs, previous
from plugins_aws.docker_host import CORE_TYPE as DOCKER_HOST
from plugins_aws.docker_host import DATA_TYPES as DOCKER_HOST_TYPES
from plugins_aws.docker_host import docker_host
from plugins_aws.errors import call, error_code, paginate
from plugins_aws.image import TYPE as IMAGE_TYPE
from plugins_aws.interface import TYPE as INTERFACE_TYPE
from plugins_aws.related import one_target_id, target_ids
from plugins_aws.resource import AwsResource
from plugins_aws.schema import replaced, resource_properties
from plugins_aws.tags import tag_specifications

TYPE = "aws.ec2.Instance"
KEYPAIR_TYPE = "aws.ec2.KeyPair"
SECURITY_GROUP_TYPE = "aws.ec2.SecurityGroup"
SUBNET_TYPE = "aws.ec2.Subnet"
USES_KEYPAIR = "aws.relationships.instance_uses_keypair"
IN_SECURITY_GROUP = "aws.relationships.instance_in_security_group"
IN_SUBNET = "aws.relationships.instance_contained_in_subnet"

NOT_FOUND = ("InvalidInstanceID.NotFound",)
LIVE_STATES = ["pending", "running", "stopping", "stopped"]
GONE_STATES = ("shutting-down", "terminated")
GENERATION = "launch_generation"
PREFLIGHT_TTL = 60.0  # seconds a passed preflight of (client, image, key pair) holds
_checked: dict[tuple[Any, ...], float] = {}  # ... until this time.monotonic()
_checking: dict[tuple[Any, ...], threading.Lock] = {}

TYPES: dict[str, Any] = {
    "data_types": DOCKER_HOST_TYPES,
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Compute",
            "description": "An EC2 instance. Key pair, security groups and subnet may come from "
                           "relationships to aws.ec2.KeyPair / SecurityGroup / Subnet nodes.",
            "properties": resource_properties({
                "image_id": replaced({"type": "string", "required": False,
                                      "description": "The AMI (required unless use_external_resource)."}),
                "instance_type": {"type": "string", "default": "t3.micro",
                                  "description": "Changed in place: the instance is stopped, modified "
                                                 "and started again."},
                "key_name": replaced({"type": "string", "required": False}),
                "security_group_ids": {"type": "list", "entry_schema": "string", "default": []},
                "subnet_id": replaced({"type": "string", "required": False}),
                "user_data": replaced({"type": "string", "required": False,
                                       "description": "Run at first boot: a change replaces the instance."}),
                "name": {"type": "string", "required": False, "description": "The Name tag."},
                "parameters": replaced({"type": "dict", "default": {},
                                        "description": "More RunInstances parameters, as boto3 names "
                                                       "them (e.g. IamInstanceProfile, BlockDeviceMappings)."}),
                "docker_host": {"type": DOCKER_HOST, "required": False,
                                "description": "A Docker engine on this instance, copied to the "
                                               "docker_host runtime property."},
            }),
            "operations": instance_ops.OPERATIONS,
        },
    },
    "relationships": {
        USES_KEYPAIR: {"derived_from": "orchestrator.relationships.connected_to",
                       "description": "The instance is launched with the target key pair."},
        IN_SECURITY_GROUP: {"derived_from": "orchestrator.relationships.connected_to",
                            "description": "The instance is a member of the target security group."},
        IN_SUBNET: {"derived_from": "orchestrator.relationships.contained_in",
                    "description": "The instance is launched into the target subnet."},
    },
}


class Instance(AwsResource):
    kind = "instance"
    tag_resource_types = ("instance", "volume")

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        if node.properties.get("use_external_resource") or node.properties.get("image_id"):
            return []
        if any(IMAGE_TYPE in rel.target_type_hierarchy for rel in node.relationships):
            return []
        return [f"image_id is required (unless use_external_resource is true, or a related {IMAGE_TYPE} gives it)"]

    # -- Resource -------------------------------------------------------------------

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        return describe_instance(self.client, resource_id)

    def find_tagged(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        filters = [*filters, {"Name": "instance-state-name", "Values": LIVE_STATES}]
        reservations = paginate(self.client, "describe_instances", "Reservations", Filters=filters)
        return [i for r in reservations for i in r["Instances"]]

    def id_of(self, resource: dict[str, Any]) -> str:
        return resource["InstanceId"]

    def is_gone(self, resource: dict[str, Any]) -> bool:
        return resource["State"]["Name"] in GONE_STATES

    def runtime_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        public = self.runtime.get("elastic_ip") or resource.get("PublicIpAddress")
        private = resource.get("PrivateIpAddress")
        runtime = {
            "instance_id": resource["InstanceId"],
            "public_ip_address": public,
            "private_ip_address": private,
            "public_dns_name": resource.get("PublicDnsName") or None,
            "private_dns_name": resource.get("PrivateDnsName") or None,
            "ip": private,
            "subnet_id": resource.get("SubnetId"),
            "vpc_id": resource.get("VpcId"),
        }
        host = docker_host(self.properties.get("docker_host"), public, private)
        if host is not None:
            runtime["docker_host"] = host
        return runtime

    def forget(self) -> None:
        super().forget()
        self.runtime.pop(GENERATION, None)  # the next launch is a new one, with a new token

    def create_new(self) -> dict[str, Any]:
        params = self.launch_parameters()
        answer = call(self.client.run_instances, **params)
        instance = answer["Instances"][0]
        if self.is_gone(instance):  # AWS answered with an old launch under this token
            self.forget()
            raise RecoverableError("the launch token belonged to a terminated instance; "
                                   "launching again with a new one", retry_after=0)
        return instance

    def delete_existing(self, resource_id: str) -> None:
        answer = call(self.client.terminate_instances, ignore=NOT_FOUND, InstanceIds=[resource_id])
        if answer is None or _current(answer, "TerminatingInstances") == "terminated":
            return
        self.wait(lambda: self._state(resource_id) in (None, "terminated"), f"instance {resource_id} to terminate")


    # -- launching ------------------------------------------------------------------

    def client_token(self) -> str:
        """Deterministic per deployment, instance and install generation; <= 64 ASCII chars."""
        generation = self.runtime.get(GENERATION)
        if not generation:
            generation = secrets.token_hex(6)
            self.save(**{GENERATION: generation})  # before RunInstances: a resumed launch reuses it
        seed = f"{self.ctx.deployment.id}\0{self.instance.id}\0{generation}"
        return "orch-" + hashlib.sha256(seed.encode()).hexdigest()[:56]

    def launch_parameters(self) -> dict[str, Any]:
        props = self.properties
        image_id = props.get("image_id") or one_target_id(self.ctx, IMAGE_TYPE, "image")
        if not image_id:
            raise NonRecoverableError(f"image_id is required (unless use_external_resource is true, or a related "
                                      f"{IMAGE_TYPE} gives it)")
        key_name = props.get("key_name") or one_target_id(self.ctx, KEYPAIR_TYPE, "key pair")
        groups = self.security_groups()
        subnet_id = props.get("subnet_id") or one_target_id(self.ctx, SUBNET_TYPE, "subnet")
        self.preflight(image_id, key_name)
        tags = self.tags()
        params: dict[str, Any] = {
            **(props.get("parameters") or {}),
            "ImageId": image_id, "InstanceType": props.get("instance_type", "t3.micro"),
            "MinCount": 1, "MaxCount": 1, "ClientToken": self.client_token(),
            "TagSpecifications": tag_specifications(self.tag_resource_types, tags),
        }
        interfaces = target_ids(self.ctx, INTERFACE_TYPE)
        if interfaces:  # the interfaces carry the subnet and the groups
            if groups or subnet_id:
                raise NonRecoverableError(f"an instance launched with network interfaces ({', '.join(interfaces)}) "
                                          "takes its subnet and security groups from them: give those to the "
                                          f"{INTERFACE_TYPE} instead")
            params["NetworkInterfaces"] = [{"NetworkInterfaceId": eni, "DeviceIndex": i}
                                           for i, eni in enumerate(interfaces)]
        optional = {"KeyName": key_name, "SecurityGroupIds": groups or None,
                    "SubnetId": subnet_id, "UserData": props.get("user_data")}
        params.update({k: v for k, v in optional.items() if v})
        return params

    def security_groups(self) -> list[str]:
        """``security_group_ids`` and every related group, in order, once each."""
        return list(dict.fromkeys([*(self.properties.get("security_group_ids") or []),
                                   *target_ids(self.ctx, SECURITY_GROUP_TYPE)]))

    def tags(self) -> dict[str, str]:
        tags = super().tags()
        if self.properties.get("name"):
            tags.setdefault("Name", str(self.properties["name"]))
        return tags

    def preflight(self, image_id: str, key_name: str | None) -> None:
        """Fail fast, with AWS's own words, on an image or key pair that cannot work.

        A pair that passed is not asked about again for a minute: fifty instances of one
        template launch with one check, not fifty.
        """
        key = (id(self.client), image_id, key_name)
        with _checking.setdefault(key, threading.Lock()):  # ten launches at once ask once
            if _checked.get(key, 0.0) > time.monotonic():
                return
            images = call(self.client.describe_images, ImageIds=[image_id])["Images"]
            if not images:
                raise NonRecoverableError(f"image {image_id} is not visible to this account in this region")
            if key_name:
                call(self.client.describe_key_pairs, KeyNames=[key_name])
            if len(_checked) > 1000:
                _checked.clear()
            _checked[key] = time.monotonic() + PREFLIGHT_TTL

    # -- start and stop -------------------------------------------------------------

    def _state(self, resource_id: str) -> str | None:
        instance = self.describe(resource_id)
        return instance["State"]["Name"] if instance else None

    def start(self) -> None:
        rid = self.require_id()
        if self.external:
            instance = self.describe(rid)
            if instance is not None:
                self.record(instance)
            return

        def running() -> bool:
            instance = self.describe(rid)
            if instance is None:  # not visible yet right after the launch
                return False
            state = instance["State"]["Name"]
            if state == "running":
                self.record(instance)
                return True
            if state == "stopped":
                call(self.client.start_instances, InstanceIds=[rid])
                return self._state(rid) == "running" and running()  # a look at once: it may be running already
            if state in GONE_STATES:
                reason = (instance.get("StateReason") or {}).get("Message", "")
                raise NonRecoverableError(f"instance {rid} is {state}{': ' + reason if reason else ''}")
            return False

        self.wait(running, f"instance {rid} to be running")
        self.logger.info("instance %s is running (public %s, private %s)", rid,
                         self.runtime.get("public_ip_address"), self.runtime.get("private_ip_address"))

    def stop(self) -> None:
        rid = self.resource_id
        if not rid or self.external:
            return

        def stopped() -> bool:
            try:  # asking is cheaper than looking first: AWS answers with the state it is in now
                answer = call(self.client.stop_instances, ignore=NOT_FOUND, InstanceIds=[rid])
            except RecoverableError as exc:
                if error_code(exc.__cause__) != "IncorrectInstanceState":  # pending, terminated, ...
                    raise
                answer = {}
            except NonRecoverableError as exc:
                if error_code(exc.__cause__) != "UnsupportedOperation":
                    raise
                self.logger.warning("instance %s cannot be stopped (%s); delete terminates it", rid, exc)
                return True
            if answer is None or _current(answer, "StoppingInstances") == "stopped":
                return True
            return self._state(rid) in (None, "stopped", *GONE_STATES)

        self.wait(stopped, f"instance {rid} to stop")

    # -- day 2 ----------------------------------------------------------------------

    tag_properties = ("tags", "name")

    def previous_tags(self) -> dict[str, object]:
        tags = super().previous_tags()
        name = previous(self.properties, self.ctx.changes, "name")
        if name and "Name" not in tags:
            tags["Name"] = name
        return tags

    def tag_targets(self) -> list[str]:
        """The instance and its volumes (both were tagged at launch)."""
        instance = self.describe(self.require_id()) or {}
        volumes = [m["Ebs"]["VolumeId"] for m in instance.get("BlockDeviceMappings") or [] if m.get("Ebs")]
        return [self.require_id(), *volumes]

    def update(self) -> None:
        """Tags, security groups, then the type (stop, modify, start); runtime properties follow."""
        rid = self.require_id()
        if self.external:  # adopted: never stopped nor modified; docker_host may still change
            instance = self.describe(rid)
            if instance is not None:
                self.record(instance)
            return
        self.update_tags()
        if changed(self.ctx.changes, "security_group_ids"):
            groups = self.security_groups()
            if groups:
                call(self.client.modify_instance_attribute, InstanceId=rid, Groups=groups)
                self.logger.info("instance %s: security groups %s", rid, ", ".join(groups))
        self.resize(rid, str(self.properties.get("instance_type", "t3.micro")))

    def resize(self, rid: str, wanted: str) -> None:
        """Bring the instance to ``wanted`` and running: one step per look, each wait a retry."""
        def done() -> bool:
            instance = self.describe(rid)
            if instance is None or self.is_gone(instance):
                raise NonRecoverableError(f"instance {rid} is {self.state_of(instance) if instance else 'gone'}: "
                                          f"it cannot be updated (uninstall and install it again)")
            state, current = instance["State"]["Name"], instance.get("InstanceType")
            if current != wanted:
                if state == "stopped":
                    self.modify_type(rid, current, wanted)
                    call(self.client.start_instances, InstanceIds=[rid])
                elif state == "running":
                    self.logger.info("instance %s: stopping it to change its type from %s to %s", rid, current,
                                     wanted)
                    call(self.client.stop_instances, InstanceIds=[rid])
                return False
            if state == "stopped":  # modified (by an earlier attempt, or by hand): start it
                call(self.client.start_instances, InstanceIds=[rid])
                return False
            if state != "running":
                return False
            self.record(instance)
            return True

        self.wait(done, f"instance {rid} to run as {wanted}")

    def modify_type(self, rid: str, current: str | None, wanted: str) -> None:
        """Change a stopped instance's type; one AWS refuses leaves it running as it was."""
        try:
            call(self.client.modify_instance_attribute, InstanceId=rid, InstanceType={"Value": wanted})
        except NonRecoverableError:
            call(self.client.start_instances, InstanceIds=[rid])
            raise
        self.logger.info("instance %s: type changed from %s to %s", rid, current, wanted)

    def state_of(self, resource: dict[str, Any]) -> str:
        return str(resource["State"]["Name"])

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        if self.external:
            return {}
        found: dict[str, Any] = {}
        state = resource["State"]["Name"]
        if state != "running":
            found["state"] = differs("running", state)
        wanted = self.properties.get("instance_type", "t3.micro")
        if resource.get("InstanceType") != wanted:
            found["instance_type"] = differs(wanted, resource.get("InstanceType"))
        groups = self.security_groups()
        actual = sorted(g["GroupId"] for g in resource.get("SecurityGroups") or [])
        if groups and sorted(groups) != actual:
            found["security_groups"] = differs(sorted(groups), actual)
        return found

    # -- custom operations (orchestrator execute) -------------------------------------

    def reboot(self, wait: bool) -> dict[str, Any]:
        return instance_ops.reboot(self, wait)

    def console_output(self, latest: bool) -> str:
        return instance_ops.console_output(self, latest)


def describe_instance(client: Any, instance_id: str) -> dict[str, Any] | None:
    """The instance with this id (terminated ones too, while AWS still lists them); None."""
    found = call(client.describe_instances, ignore=NOT_FOUND, InstanceIds=[instance_id])
    instances = [i for r in (found or {}).get("Reservations", []) for i in r.get("Instances", [])]
    return instances[0] if instances else None


def _current(answer: dict[str, Any] | None, key: str) -> str | None:
    """The state AWS says the (one) instance is in now, from a start/stop/terminate answer."""
    changes = (answer or {}).get(key) or []
    return changes[0].get("CurrentState", {}).get("Name") if changes else None


plugin = Plugin(TYPES, {TYPE: Instance})
