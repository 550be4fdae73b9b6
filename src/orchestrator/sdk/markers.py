"""Ownership markers: the tags or labels that say which node instance made a resource.

Every resource a plugin makes should carry them from its very first API call, so a
create that crashed before saving the resource's id finds it again instead of making a
second one, ``delete`` can clean up a resource whose id was never saved, and a test can
list what a deployment left behind. One spelling for every plugin and every kind of
marker (AWS tags, Docker labels, Kubernetes labels): ``orchestrator.deployment`` and
``orchestrator.instance``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

DEPLOYMENT_MARKER = "orchestrator.deployment"
INSTANCE_MARKER = "orchestrator.instance"


def owner_markers(deployment_id: str, instance_id: str) -> dict[str, str]:
    """``{"orchestrator.deployment": ..., "orchestrator.instance": ...}``."""
    return {DEPLOYMENT_MARKER: deployment_id, INSTANCE_MARKER: instance_id}


def markers_of(ctx: Any) -> dict[str, str]:
    """The markers of the node instance a hook runs for (the source, in relationship hooks)."""
    instance = ctx.source.instance if ctx.source is not None else ctx.instance
    return owner_markers(ctx.deployment.id, instance.id)


def carries(found: Mapping[str, Any], markers: Mapping[str, str]) -> bool:
    """True if the tags or labels ``found`` include every one of ``markers``."""
    return all(found.get(key) == value for key, value in markers.items())
