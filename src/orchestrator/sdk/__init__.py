"""The plugin SDK: the shortest path to a plugin that survives crashes, retries and resumes.

- ``Plugin(types, {type: class})`` with ``Resource`` / ``Relationship`` classes: one
  class per type, one method per operation; the hookimpls are generated and routed by
  type (no dispatching on ``ctx.node.type_hierarchy`` by hand).
- ``OwnedResource``: adopt an external resource, or resume with the saved id, or find
  one by ownership markers, and only then create; delete what is provably ours.
- ``wait_until(ctx, probe, what)``: wait for a resource by asking to be retried, with a
  short first poll and a backoff, never by sleeping inside a hook.
- ``owner_markers`` / ``markers_of``: the one spelling of the ownership tags or labels.
- ``wrap_operations``: a type-less wrapper plugin from one generator function.
- ``unresolved(value)``: for ``validate_node``, is this value known only at run time?

Plain ``@hookimpl`` functions keep working; the SDK only writes them for you.
"""

from __future__ import annotations

from orchestrator.sdk.markers import (
    DEPLOYMENT_MARKER,
    INSTANCE_MARKER,
    carries,
    markers_of,
    owner_markers,
)
from orchestrator.sdk.plugin import Plugin
from orchestrator.sdk.resources import (
    EXTERNAL_PROPERTIES,
    OwnedResource,
    Problem,
    Relationship,
    Resource,
)
from orchestrator.sdk.values import unresolved
from orchestrator.sdk.waiting import WAITING, NotReady, next_interval, wait_until
from orchestrator.sdk.wrappers import Wrappers, wrap_operations

__all__ = [
    "DEPLOYMENT_MARKER",
    "EXTERNAL_PROPERTIES",
    "INSTANCE_MARKER",
    "WAITING",
    "NotReady",
    "OwnedResource",
    "Plugin",
    "Problem",
    "Relationship",
    "Resource",
    "Wrappers",
    "carries",
    "markers_of",
    "next_interval",
    "owner_markers",
    "unresolved",
    "wait_until",
    "wrap_operations",
]
