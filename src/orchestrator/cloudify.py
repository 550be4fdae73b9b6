"""Cloudify type packs: how a plugin runs the types of a Cloudify plugin it stands in for.

A Cloudify blueprint imports its plugins' YAML (``plugin:cloudify-aws-plugin``, or a URL
of a ``plugin.yaml``) and uses their types (``cloudify.aws.nodes.Instance``). Nothing is
downloaded: a plugin distribution ships a *pack* for each Cloudify plugin it replaces,
through the ``cloudify_packs`` hook. A pack says which imports it answers, declares the
Cloudify types in Cloudify's own DSL (properties and interfaces, so blueprints are
checked as Cloudify checked them), and maps each type onto one of the plugin's own
types (``TypeMapping``): a function turns the Cloudify properties (and the operation
inputs a template gives) into the target type's properties when the blueprint is
planned, and ``get_attribute`` of a Cloudify runtime property reads the target's.
The nodes then run the target type's hooks, exactly as if the blueprint had named it.

    from orchestrator import hookimpl
    from orchestrator.cloudify import CloudifyPack, MappingError, PackNode, TypeMapping

    def _server(node: PackNode) -> dict:
        return {"image_id": node.properties["image"], "name": node.properties.get("name")}

    PACK = CloudifyPack(
        name="cloudify-acme-plugin",                       # plugin:cloudify-acme-plugin
        imports=[r"https?://example\\.com/acme-plugin/[^/]+/plugin\\.yaml"],
        types=TYPES_YAML,                                  # Cloudify DSL: plugins, node_types, ...
        mappings={"cloudify.acme.nodes.Server": TypeMapping("acme.Server", _server,
                                                             attributes={"ip": "address"})},
        unsupported={"cloudify.acme.nodes.*": "orchestrator-acme maps only Server"},
    )

    @hookimpl
    def cloudify_packs():
        return [PACK]

The core ships the pack of Cloudify's own ``types.yaml`` the same way; it is the model
to read (``orchestrator/dsl/cloudify/types.yaml`` and ``base_pack.py``).
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

PropertyPath = Sequence[str | int]


class MappingError(Exception):
    """A Cloudify value the pack cannot express in the target type.

    Raised by a ``TypeMapping.properties`` function; it becomes a ``FILE:LINE:COL`` problem
    of the template (at ``path``, a path into the Cloudify properties, when given). Start
    the message with ``not supported:`` for what is valid in Cloudify but has no
    equivalent here.
    """

    def __init__(self, message: str, path: PropertyPath | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.path = tuple(path) if path is not None else None


@attrs.frozen
class PackNode:
    """What a mapping function sees of one node template, as Cloudify would run it.

    ``properties`` are the Cloudify properties with defaults filled in and plan-time
    functions resolved; values known only at run time (``get_attribute``, ``get_secret``)
    are still their function mappings: move them, do not look into them.
    ``operation_inputs`` maps each lifecycle operation (``create``, ``start``, ...) to the
    inputs the template or its types give it.
    """

    name: str
    type: str
    type_hierarchy: tuple[str, ...]
    properties: Mapping[str, Any]
    operation_inputs: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)


@attrs.frozen
class TypeMapping:
    """One Cloudify node or relationship type, run as one of the plugin's own types.

    ``target`` is the type whose hooks run. ``properties`` turns a ``PackNode`` into the
    target's properties (``None``: the Cloudify properties the target declares, by name).
    ``attributes`` renames runtime properties for ``get_attribute`` (Cloudify name ->
    the target's). ``relationships`` routes a template's plain Cloudify relationship
    (``cloudify.relationships.depends_on`` or ``connected_to``) to a node of the named
    Cloudify type through one of the plugin's relationship types (an elastic IP that
    ``depends_on`` an instance is associated with it).
    """

    target: str
    properties: Callable[[PackNode], Mapping[str, Any]] | None = None
    attributes: Mapping[str, str] = attrs.field(factory=dict)
    relationships: Mapping[str, str] = attrs.field(factory=dict)


@attrs.frozen
class CloudifyPack:
    """The offline stand-in for one Cloudify plugin (or Cloudify's own ``types.yaml``).

    ``name`` is what ``plugin:NAME`` imports name. ``imports`` are regular expressions
    matched against whole import URLs (``?query`` ignored). ``types`` is YAML text (or a
    mapping) in Cloudify's DSL with ``plugins``, ``data_types``, ``node_types`` and
    ``relationships`` (``dsl_definitions`` may hold its anchors); it may import nothing.
    ``mappings`` gives each type that does something its ``TypeMapping``. ``unsupported``
    maps a type name or glob of the Cloudify plugin this pack does not provide to why;
    blueprints using one are refused with that reason.
    """

    name: str
    types: str | Mapping[str, Any]
    imports: Sequence[str] = ()
    mappings: Mapping[str, TypeMapping] = attrs.field(factory=dict)
    unsupported: Mapping[str, str] = attrs.field(factory=dict)
    description: str = ""

    def answers(self, url: str) -> bool:
        """Whether an import URL stands for this pack."""
        plain = url.split("?", 1)[0]
        return any(re.fullmatch(pattern, plain) for pattern in self.imports)

    def why_unsupported(self, type_name: str) -> str | None:
        for pattern, why in self.unsupported.items():
            if fnmatch.fnmatchcase(type_name, pattern):
                return why
        return None


__all__ = ["CloudifyPack", "MappingError", "PackNode", "PropertyPath", "TypeMapping"]
