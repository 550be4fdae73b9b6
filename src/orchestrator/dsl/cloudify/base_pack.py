"""The core's pack: Cloudify's own ``types.yaml`` (``cloudify/types/types.yaml`` or its URLs).

Its types do nothing by themselves, as in Cloudify, so it maps none of them; the
front-end derives their roots from ours. What it refuses needs a Cloudify manager.
"""

from __future__ import annotations

from importlib import resources

from orchestrator.cloudify import CloudifyPack

MANAGER = "needs a Cloudify manager"
UNSUPPORTED = {
    "cloudify.nodes.Component": f"it deploys another blueprint ({MANAGER})",
    "cloudify.nodes.ServiceComponent": f"it deploys another blueprint ({MANAGER})",
    "cloudify.nodes.SharedResource": f"it uses another deployment ({MANAGER})",
    "cloudify.nodes.Blueprint": f"it uploads a blueprint ({MANAGER})",
    "cloudify.nodes.PasswordSecret": f"it writes a manager secret ({MANAGER})",
    "cloudify.nodes.CloudifyManager": MANAGER,
    "cloudify.nodes.FileSystem": "it mounts a file system through an agent (orchestrator installs no agents)",
    "cloudify.relationships.depends_on_lifecycle_operation": "it orders single operations, not whole nodes",
    "cloudify.relationships.depends_on_shared_resource": f"it uses another deployment ({MANAGER})",
    "cloudify.relationships.connected_to_shared_resource": f"it uses another deployment ({MANAGER})",
    "cloudify.relationships.file_system_depends_on_volume": "it mounts through an agent",
    "cloudify.relationships.file_system_contained_in_compute": "it mounts through an agent",
}

BASE_PACK = CloudifyPack(
    name="cloudify-types",
    types=resources.files("orchestrator.dsl.cloudify").joinpath("types.yaml").read_text(encoding="utf-8"),
    imports=(),
    unsupported=UNSUPPORTED,
    description="Cloudify's base types (types.yaml)",
)

__all__ = ["BASE_PACK", "UNSUPPORTED"]
