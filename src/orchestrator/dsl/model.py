"""The parsed blueprint: plain attrs classes, no behaviour beyond small lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import attrs

from orchestrator.dsl.problems import NOWHERE, Mark


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


@attrs.define(slots=True)
class Constraint:
    name: str
    argument: Any
    mark: Mark


@attrs.define(slots=True)
class PropertyDef:
    """A property of a type, a field of a data type, or a blueprint input."""

    name: str
    type: str | None = None
    required: bool = True
    default: Any = MISSING
    description: str = ""
    constraints: list[Constraint] = attrs.field(factory=list)
    entry_schema: str | None = None
    replace_on_change: bool = False  # a change cannot be applied in place: the instance is replaced
    mark: Mark = NOWHERE
    raw: Any = None


@attrs.define(slots=True)
class OperationDef:
    """A custom operation a plugin declares on its node type (``orchestrator execute``)."""

    name: str
    description: str
    inputs: dict[str, PropertyDef]
    mark: Mark = NOWHERE


@attrs.define(slots=True)
class TypeDef:
    """A node type, relationship type or data type after ``derived_from`` is resolved."""

    kind: str  # "node type" | "relationship type" | "data type"
    name: str
    derived_from: str | None
    own_properties: dict[str, PropertyDef]
    mark: Mark
    raw: Any
    plugin: str | None = None  # the plugin that registered it; None for blueprint types
    properties: dict[str, PropertyDef] = attrs.field(factory=dict)
    hierarchy: list[str] = attrs.field(factory=list)  # root first, itself last
    owner: str | None = None  # plugin whose hooks run for this type (routing)
    own_operations: dict[str, OperationDef] = attrs.field(factory=dict)
    operations: dict[str, OperationDef] = attrs.field(factory=dict)  # its own and its ancestors'


@attrs.define(slots=True)
class RelationshipTemplate:
    type: str
    target: str
    properties: dict[str, Any]
    index: int
    mark: Mark
    values: dict[str, Any] = attrs.field(factory=dict)
    hierarchy: list[str] = attrs.field(factory=list)
    owner: str | None = None

    @property
    def is_contained_in(self) -> bool:
        return CONTAINED_IN in self.hierarchy

    @property
    def is_connected_to(self) -> bool:
        return CONNECTED_TO in self.hierarchy


@attrs.define(slots=True)
class NodeTemplate:
    name: str
    type: str
    properties: dict[str, Any]
    relationships: list[RelationshipTemplate]
    instances: int
    mark: Mark
    hierarchy: list[str] = attrs.field(factory=list)
    owner: str | None = None
    host: str | None = None  # template named by the contained_in relationship
    values: dict[str, Any] = attrs.field(factory=dict)  # properties after plan-time functions
    runtime_paths: frozenset[str] = frozenset()  # properties holding get_attribute/get_secret
    operation_timeout: float | None = None  # seconds per hook call of this template's instances
    # Cloudify blueprints only: lifecycle operations the template turned off (``create: {}``)
    # and the inputs it gives each operation (``ctx.operation.inputs``).
    disabled: frozenset[str] = frozenset()
    operation_inputs: dict[str, dict[str, Any]] = attrs.field(factory=dict)


@attrs.define(slots=True)
class Output:
    name: str
    value: Any
    description: str
    mark: Mark


@attrs.define(slots=True)
class Blueprint:
    path: Path
    display: str
    description: str
    inputs: dict[str, PropertyDef]
    data_types: dict[str, TypeDef]
    node_types: dict[str, TypeDef]
    relationship_types: dict[str, TypeDef]
    templates: dict[str, NodeTemplate]
    outputs: dict[str, Output]
    input_values: dict[str, Any] = attrs.field(factory=dict)
    secret_names: set[str] = attrs.field(factory=set)
    secret_marks: dict[str, Mark] = attrs.field(factory=dict)  # first get_secret of each name
    dialect: str = "orchestrator"  # or "cloudify": Cloudify's functions and property rules apply

    @property
    def directory(self) -> Path:
        return self.path.parent


ROOT_NODE = "orchestrator.nodes.Root"
COMPUTE = "orchestrator.nodes.Compute"
DEPENDS_ON = "orchestrator.relationships.depends_on"
CONNECTED_TO = "orchestrator.relationships.connected_to"
CONTAINED_IN = "orchestrator.relationships.contained_in"
