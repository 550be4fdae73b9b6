"""The ``aws_ec2_instance`` plugin: ``aws.ec2.Instance``.

Launching is idempotent twice over: the ``ClientToken`` is derived from deployment id,
instance id and a per-install generation saved *before* RunInstances, so AWS itself
answers a repeated launch with the first instance; and the instance is tagged in the
same call, so a resume that lost the id finds it by tag. ``start``/``stop``/``delete``
act, then look at once (AWS's answer often says the instance is already there); if not,
they wait with ``wait_until``: the operation asks to be retried, first after 0.1 s, the
pause doubling up to ``poll_interval``, for at most ``wait_timeout`` in all. No wait
holds a worker.
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
from plugins_aws.docker_host import CORE_TYPE as DOCKER_HOST
from plugins_aws.docker_host import DATA_TYPES as DOCKER_HOST_TYPES
from plugins_aws.docker_host import docker_host
from plugins_aws.errors import call, error_code, paginate
from plugins_aws.related import one_target_id, target_ids
from plugins_aws.resource import AwsResource
from plugins_aws.schema import resource_properties
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
                "image_id": {"type": "string", "required": False,
                             "description": "The AMI (required unless use_external_resource)."},
                "instance_type": {"type": "string", "default": "t3.micro"},
                "key_name": {"type": "string", "required": False},
                "security_group_ids": {"type": "list", "entry_schema": "string", "default": []},
                "subnet_id": {"type": "string", "required": False},
                "user_data": {"type": "string", "required": False},
                "name": {"type": "string", "required": False, "description": "The Name tag."},
                "parameters": {"type": "dict", "default": {},
                               "description": "More RunInstances parameters, as boto3 names "
                                              "them (e.g. IamInstanceProfile, BlockDeviceMappings)."},
                "docker_host": {"type": DOCKER_HOST, "required": False,
                                "description": "A Docker engine on this instance, copied to the "
                                               "docker_host runtime property."},
            }),
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
        if not node.properties.get("use_external_resource") and not node.properties.get("image_id"):
            return ["image_id is required (unless use_external_resource is true)"]
        return []

    # -- Resource -------------------------------------------------------------------

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        found = call(self.client.describe_instances, ignore=NOT_FOUND, InstanceIds=[resource_id])
        instances = [i for r in (found or {}).get("Reservations", []) for i in r.get("Instances", [])]
        return instances[0] if instances else None

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
        image_id = props.get("image_id")
        if not image_id:
            raise NonRecoverableError("image_id is required (unless use_external_resource is true)")
        key_name = props.get("key_name") or one_target_id(self.ctx, KEYPAIR_TYPE, "key pair")
        groups = list(dict.fromkeys([*(props.get("security_group_ids") or []),
                                     *target_ids(self.ctx, SECURITY_GROUP_TYPE)]))
        subnet_id = props.get("subnet_id") or one_target_id(self.ctx, SUBNET_TYPE, "subnet")
        self.preflight(image_id, key_name)
        tags = self.tags()
        if props.get("name"):
            tags.setdefault("Name", props["name"])
        params: dict[str, Any] = {
            **(props.get("parameters") or {}),
            "ImageId": image_id, "InstanceType": props.get("instance_type", "t3.micro"),
            "MinCount": 1, "MaxCount": 1, "ClientToken": self.client_token(),
            "TagSpecifications": tag_specifications(self.tag_resource_types, tags),
        }
        optional = {"KeyName": key_name, "SecurityGroupIds": groups or None,
                    "SubnetId": subnet_id, "UserData": props.get("user_data")}
        params.update({k: v for k, v in optional.items() if v})
        return params

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


def _current(answer: dict[str, Any] | None, key: str) -> str | None:
    """The state AWS says the (one) instance is in now, from a start/stop/terminate answer."""
    changes = (answer or {}).get(key) or []
    return changes[0].get("CurrentState", {}).get("Name") if changes else None


plugin = Plugin(TYPES, {TYPE: Instance})
