"""Reading what a node is related to: targets are found by their node *type*.

Any relationship type works (the plugin's named ones, or the core's ``connected_to`` /
``contained_in``), so blueprints stay free to choose; what matters is that the target
is, say, an ``aws.ec2.SecurityGroup``.
"""

from __future__ import annotations

from typing import Any

from orchestrator import NonRecoverableError

RESOURCE_ID = "aws_resource_id"
CONTAINED_IN = "orchestrator.relationships.contained_in"


def targets_of_type(ctx: Any, type_name: str) -> list[Any]:
    """Targets (``.node``, ``.instance``) of ``ctx.instance``'s relationships of a node type."""
    return [rel.target for rel in ctx.instance.relationships
            if type_name in rel.target.node.type_hierarchy]


def target_ids(ctx: Any, type_name: str) -> list[str]:
    """The ``aws_resource_id`` of each related target of ``type_name``, in order."""
    ids = []
    for target in targets_of_type(ctx, type_name):
        rid = target.instance.runtime_properties.get(RESOURCE_ID)
        if not rid:
            raise NonRecoverableError(f"related {type_name} '{target.instance.id}' has no "
                                      f"{RESOURCE_ID} yet (was it created?)")
        ids.append(rid)
    return ids


def host_id(ctx: Any, type_name: str) -> str | None:
    """The id of the ``contained_in`` target of ``type_name``, if there is one: where several
    targets of that type are related (a rule contained in one group and naming another as
    its peer), the container is the one that holds the node."""
    for rel in ctx.instance.relationships:
        if CONTAINED_IN in (rel.type_hierarchy or []) and type_name in rel.target.node.type_hierarchy:
            return rel.target.instance.runtime_properties.get(RESOURCE_ID)
    return None


def one_target_id(ctx: Any, type_name: str, what: str) -> str | None:
    """The id of the single related target of ``type_name``; None if there is none."""
    ids = target_ids(ctx, type_name)
    if len(ids) > 1:
        raise NonRecoverableError(f"{ctx.instance.id} is related to {len(ids)} {what}s; "
                                  f"it can use only one")
    return ids[0] if ids else None
