"""Ownership tags: how a resource is traced back to its deployment and node instance.

Every resource the plugin creates carries both tags from its very first API call
(``TagSpecifications``), so a create that crashed before saving the resource's id is
found again by tag on resume instead of creating a second one, and so leaks are
listable per deployment (``plugins_aws.testing.list_resources``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

DEPLOYMENT_TAG = "orchestrator:deployment"
INSTANCE_TAG = "orchestrator:instance"


def ownership_tags(deployment_id: str, instance_id: str) -> dict[str, str]:
    return {DEPLOYMENT_TAG: deployment_id, INSTANCE_TAG: instance_id}


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
