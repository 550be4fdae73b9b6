"""The parsed blueprint: plain records (``orchestrator.record``), no behaviour beyond small lookups."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.dsl.problems import NOWHERE, Mark
from orchestrator.record import Record


class _Missing:
    __slots__ = ()

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


class Constraint(Record):
    __slots__ = ("name", "argument", "mark")

    def __init__(self, name: str, argument: Any, mark: Mark) -> None:
        self.name = name
        self.argument = argument
        self.mark = mark


class PropertyDef(Record):
    """A property of a type, a field of a data type, or a blueprint input."""

    __slots__ = ("name", "type", "required", "default", "description",
                 "constraints", "entry_schema", "replace_on_change", "mark", "raw")

    def __init__(self, name: str, type: str | None = None, required: bool = True, default: Any = MISSING,
                 description: str = "", constraints: list[Constraint] | None = None, entry_schema: str | None = None,
                 replace_on_change: bool = False, mark: Mark = NOWHERE, raw: Any = None) -> None:
        self.name = name
        self.type = type
        self.required = required
        self.default = default
        self.description = description
        self.constraints = [] if constraints is None else constraints
        self.entry_schema = entry_schema
        self.replace_on_change = replace_on_change  # a change cannot be applied in place: the instance is replaced
        self.mark = mark
        self.raw = raw


class OperationDef(Record):
    """A custom operation a plugin declares on its node type (``orchestrator execute``)."""

    __slots__ = ("name", "description", "inputs", "mark")

    def __init__(self, name: str, description: str, inputs: dict[str, PropertyDef], mark: Mark = NOWHERE) -> None:
        self.name = name
        self.description = description
        self.inputs = inputs
        self.mark = mark


class TypeDef(Record):
    """A node type, relationship type or data type after ``derived_from`` is resolved."""

    __slots__ = ("kind", "name", "derived_from", "own_properties", "mark", "raw",
                 "plugin", "properties", "hierarchy", "owner", "own_operations", "operations")

    def __init__(self, kind: str, name: str, derived_from: str | None, own_properties: dict[str, PropertyDef],
                 mark: Mark, raw: Any, plugin: str | None = None, properties: dict[str, PropertyDef] | None = None,
                 hierarchy: list[str] | None = None, owner: str | None = None,
                 own_operations: dict[str, OperationDef] | None = None,
                 operations: dict[str, OperationDef] | None = None) -> None:
        self.kind = kind  # "node type" | "relationship type" | "data type"
        self.name = name
        self.derived_from = derived_from
        self.own_properties = own_properties
        self.mark = mark
        self.raw = raw
        self.plugin = plugin  # the plugin that registered it; None for blueprint types
        self.properties = {} if properties is None else properties
        self.hierarchy = [] if hierarchy is None else hierarchy  # root first, itself last
        self.owner = owner  # plugin whose hooks run for this type (routing)
        self.own_operations = {} if own_operations is None else own_operations
        self.operations = {} if operations is None else operations  # its own and its ancestors'


class RelationshipTemplate(Record):
    __slots__ = ("type", "target", "properties", "index", "mark", "values", "hierarchy", "owner")

    def __init__(self, type: str, target: str, properties: dict[str, Any], index: int, mark: Mark,
                 values: dict[str, Any] | None = None, hierarchy: list[str] | None = None,
                 owner: str | None = None) -> None:
        self.type = type
        self.target = target
        self.properties = properties
        self.index = index
        self.mark = mark
        self.values = {} if values is None else values
        self.hierarchy = [] if hierarchy is None else hierarchy
        self.owner = owner

    @property
    def is_contained_in(self) -> bool:
        return CONTAINED_IN in self.hierarchy

    @property
    def is_connected_to(self) -> bool:
        return CONNECTED_TO in self.hierarchy


class NodeTemplate(Record):
    __slots__ = ("name", "type", "properties", "relationships", "instances", "mark", "hierarchy",
                 "owner", "host", "values", "runtime_paths", "operation_timeout", "disabled", "operation_inputs")

    def __init__(self, name: str, type: str, properties: dict[str, Any], relationships: list[RelationshipTemplate],
                 instances: int, mark: Mark, hierarchy: list[str] | None = None, owner: str | None = None,
                 host: str | None = None, values: dict[str, Any] | None = None,
                 runtime_paths: frozenset[str] = frozenset(), operation_timeout: float | None = None,
                 disabled: frozenset[str] = frozenset(),
                 operation_inputs: dict[str, dict[str, Any]] | None = None) -> None:
        self.name = name
        self.type = type
        self.properties = properties
        self.relationships = relationships
        self.instances = instances
        self.mark = mark
        self.hierarchy = [] if hierarchy is None else hierarchy
        self.owner = owner
        self.host = host  # template named by the contained_in relationship
        self.values = {} if values is None else values  # properties after plan-time functions
        self.runtime_paths = runtime_paths  # properties holding get_attribute/get_secret
        self.operation_timeout = operation_timeout  # seconds per hook call of this template's instances
        # Cloudify blueprints only: lifecycle operations the template turned off (``create: {}``)
        # and the inputs it gives each operation (``ctx.operation.inputs``).
        self.disabled = disabled
        self.operation_inputs = {} if operation_inputs is None else operation_inputs


class Output(Record):
    __slots__ = ("name", "value", "description", "mark")

    def __init__(self, name: str, value: Any, description: str, mark: Mark) -> None:
        self.name = name
        self.value = value
        self.description = description
        self.mark = mark


class Blueprint(Record):
    __slots__ = ("path", "display", "description", "inputs", "data_types", "node_types",
                 "relationship_types", "templates", "outputs", "input_values", "secret_names", "secret_marks", "dialect")

    def __init__(self, path: Path, display: str, description: str, inputs: dict[str, PropertyDef],
                 data_types: dict[str, TypeDef], node_types: dict[str, TypeDef],
                 relationship_types: dict[str, TypeDef], templates: dict[str, NodeTemplate],
                 outputs: dict[str, Output], input_values: dict[str, Any] | None = None,
                 secret_names: set[str] | None = None, secret_marks: dict[str, Mark] | None = None,
                 dialect: str = "orchestrator") -> None:
        self.path = path
        self.display = display
        self.description = description
        self.inputs = inputs
        self.data_types = data_types
        self.node_types = node_types
        self.relationship_types = relationship_types
        self.templates = templates
        self.outputs = outputs
        self.input_values = {} if input_values is None else input_values
        self.secret_names = set() if secret_names is None else secret_names
        self.secret_marks = {} if secret_marks is None else secret_marks  # first get_secret of each name
        self.dialect = dialect  # or "cloudify": Cloudify's functions and property rules apply

    @property
    def directory(self) -> Path:
        return self.path.parent


ROOT_NODE = "orchestrator.nodes.Root"
COMPUTE = "orchestrator.nodes.Compute"
DEPENDS_ON = "orchestrator.relationships.depends_on"
CONNECTED_TO = "orchestrator.relationships.connected_to"
CONTAINED_IN = "orchestrator.relationships.contained_in"
