"""Ownership tags: how a resource is traced back to its deployment and node instance.

Every resource the plugin creates carries both tags from its very first API call
(``TagSpecifications``), so a create that crashed before saving the resource's id is
found again by tag on resume instead of creating a second one, and so leaks are
listable per deployment (``plugins_aws.testing.list_resources``). The keys are the
SDK's ownership markers, ``orchestrator.deployment`` and ``orchestrator.instance``, the
same as the Docker plugin's labels. Resources made by 0.1 carry
``orchestrator:deployment`` / ``orchestrator:instance``: a delete whose id was never
saved looks for those too.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.sdk import DEPLOYMENT_MARKER, INSTANCE_MARKER

DEPLOYMENT_TAG = DEPLOYMENT_MARKER
INSTANCE_TAG = INSTANCE_MARKER
LEGACY_KEYS = {DEPLOYMENT_TAG: "orchestrator:deployment", INSTANCE_TAG: "orchestrator:instance"}


def ownership_tags(deployment_id: str, instance_id: str) -> dict[str, str]:
    return {DEPLOYMENT_TAG: deployment_id, INSTANCE_TAG: instance_id}


def legacy(tags: Mapping[str, str]) -> dict[str, str]:
    """The same ownership tags as 0.1 spelled them."""
    return {LEGACY_KEYS.get(k, k): v for k, v in tags.items()}


def tag_list(tags: Mapping[str, Any]) -> list[dict[str, str]]:
    return [{"Key": str(k), "Value": str(v)} for k, v in tags.items()]


def tag_specifications(resource_types: Iterable[str], tags: Mapping[str, Any]) -> list[dict[str, Any]]:
    """``TagSpecifications`` tagging each of ``resource_types`` with ``tags``."""
    return [{"ResourceType": rt, "Tags": tag_list(tags)} for rt in resource_types]


def tag_filters(tags: Mapping[str, str]) -> list[dict[str, Any]]:
    """``Filters`` matching resources that carry every one of ``tags``."""
    return [{"Name": f"tag:{k}", "Values": [v]} for k, v in tags.items()]


def tags_of(resource: Mapping[str, Any]) -> dict[str, str]:
    """A described resource's ``Tags`` list as a dict."""
    return {t["Key"]: t.get("Value", "") for t in resource.get("Tags") or []}
