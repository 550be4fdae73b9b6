"""The ``aws_image`` plugin: ``aws.ec2.Image``, an AMI looked up, not made.

Like Terraform's ``aws_ami`` data source: ``create`` finds the newest image matching
``owners`` and ``filters`` (or checks that ``image_id`` exists) and records it; delete
forgets it, deregistering nothing. An ``aws.ec2.Instance`` related to an image node (any
relationship) launches from it when it names no ``image_id`` of its own, so a blueprint
says "the latest Ubuntu of Canonical" instead of pinning an id per region.

Day 2: a changed filter replaces the node (the lookup runs again, and the instances that
depend on it are replaced in turn: what a newer image means); ``check_drift`` reports an
image deregistered since.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator import NodeTemplateInfo, NonRecoverableError
from orchestrator.sdk import Plugin, Problem, Resource
from plugins_aws.errors import call
from plugins_aws.related import RESOURCE_ID
from plugins_aws.resource import Ec2Client
from plugins_aws.schema import CLIENT_PROPERTIES, replaced

TYPE = "aws.ec2.Image"

TYPES: dict[str, Any] = {
    "node_types": {
        TYPE: {
            "derived_from": "orchestrator.nodes.Root",
            "description": "An AMI found by owners and filters (the newest match), or checked by id.",
            "properties": {
                **CLIENT_PROPERTIES,
                "image_id": replaced({"type": "string", "required": False,
                                      "description": "A known AMI id (checked to exist); else owners/filters."}),
                "owners": replaced({"type": "list", "entry_schema": "string", "default": [],
                                    "description": "Account ids or aliases (self, amazon, aws-marketplace)."}),
                "filters": replaced({"type": "dict", "default": {},
                                     "description": "DescribeImages filters: name -> value or list of values "
                                                    "(e.g. name: ubuntu/images/*-22.04-amd64-server-*)."}),
            },
        },
    },
}


def _filters(raw: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"Name": str(name), "Values": [str(v) for v in (values if isinstance(values, list) else [values])]}
            for name, values in raw.items()]


class Image(Ec2Client, Resource):
    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        props = node.properties
        if not props.get("image_id") and not props.get("owners") and not props.get("filters"):
            return ["give image_id, or owners and/or filters to look the image up by"]
        return []


    def lookup(self) -> dict[str, Any]:
        props = self.properties
        params: dict[str, Any] = {}
        if props.get("image_id"):
            params["ImageIds"] = [props["image_id"]]
        if props.get("owners"):
            params["Owners"] = list(props["owners"])
        if props.get("filters"):
            params["Filters"] = _filters(props["filters"])
        found = call(self.client.describe_images, ignore=("InvalidAMIID.NotFound", "InvalidAMIID.Malformed"),
                     **params)
        images = [i for i in (found or {}).get("Images") or [] if i.get("State", "available") == "available"]
        if not images:
            raise NonRecoverableError(f"no available image matches {_describe(params)}")
        return max(images, key=lambda i: i.get("CreationDate") or "")

    def create(self) -> None:
        image = self.lookup()
        self.save(**{RESOURCE_ID: image["ImageId"], "image_id": image["ImageId"], "name": image.get("Name"),
                     "creation_date": image.get("CreationDate"), "owner_id": image.get("OwnerId")})
        self.logger.info("image %s (%s)", image["ImageId"], image.get("Name") or "no name")

    def delete(self) -> None:
        self.runtime.pop(RESOURCE_ID, None)  # looked up, not made: nothing to deregister

    def check_drift(self) -> dict[str, Any] | None:
        rid = self.runtime.get(RESOURCE_ID)
        if not rid:
            return None
        found = call(self.client.describe_images, ignore=("InvalidAMIID.NotFound",), ImageIds=[rid])
        if not (found or {}).get("Images"):
            return {"gone": f"image {rid} is no longer available"}
        return None


def _describe(params: Mapping[str, Any]) -> str:
    parts = [f"id {params['ImageIds'][0]}"] if "ImageIds" in params else []
    if "Owners" in params:
        parts.append(f"owners {', '.join(params['Owners'])}")
    parts += [f"{f['Name']}={'|'.join(f['Values'])}" for f in params.get("Filters", [])]
    return "; ".join(parts)


plugin = Plugin(TYPES, {TYPE: Image})
