"""Custom operations: what each deployed node offers, and the checked inputs of one run.

A plugin declares them on its node types (``operations:`` in ``register_types``); a node
offers those of the nearest plugin type in its hierarchy. They are read from the plugins
installed now, not from the deployment: upgrading a plugin brings its new operations to
deployments made before.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.dsl.functions import functions_in
from orchestrator.dsl.inputs import GivenInput, coerce
from orchestrator.dsl.model import MISSING, OperationDef, TypeDef
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.schema import ValueChecker
from orchestrator.plan import PlannedNode
from orchestrator.plugins import PluginManager


class Catalogue:
    """The custom operations of the installed plugins' node types."""

    def __init__(self, pm: PluginManager) -> None:
        from orchestrator.dsl.loader import plugin_types

        types = plugin_types(pm.type_sources)
        self.node_types: dict[str, TypeDef] = types["node_types"]
        self.data_types: dict[str, TypeDef] = types["data_types"]

    def of(self, node: PlannedNode) -> dict[str, OperationDef]:
        """The operations a node offers: those of the nearest plugin type it derives from."""
        for name in reversed(node.hierarchy):
            declared = self.node_types.get(name)
            if declared is not None:
                return declared.operations
        return {}

    def check_inputs(self, operation: OperationDef, given: Mapping[str, GivenInput], problems: Problems,
                     label: str = "<-p>") -> dict[str, Any]:
        """The operation's inputs: given ones coerced to their declared type and checked, defaults
        filled in; unknown, missing or ill-typed ones are problems at their ``-p`` argument."""
        where = f"operation '{shown(operation.name)}'"
        for name, item in given.items():
            if name not in operation.inputs:
                known = f" (its inputs: {', '.join(operation.inputs)})" if operation.inputs else " (it takes none)"
                problems.add(item.name_mark or item.mark, f"{where} has no input '{shown(name)}'"
                             f"{did_you_mean(name, operation.inputs) or known}")
        checker = ValueChecker(self.data_types, problems)
        values: dict[str, Any] = {}
        for name, prop in operation.inputs.items():
            if name in given:
                item = given[name]
                value, mark = coerce(item, prop), item.mark
                functions = [fn for fn, _ in functions_in(value, mark)]
                if functions:
                    problems.add(mark, f"input '{shown(name)}' of {where}: {functions[0]} is not evaluated in "
                                 "operation inputs; give the value itself")
                    continue
                checker.check_property(prop, value, mark, f"input '{shown(name)}' of {where}")
                values[name] = value
            elif prop.default is not MISSING:
                values[name] = prop.default
            elif prop.required:
                problems.add(Mark(label, 1, 1), f"{where} needs input '{shown(name)}' (give -p {name}=VALUE)"
                             f"{f': {prop.description}' if prop.description else ''}")
        return values


def describe(operation: OperationDef) -> dict[str, Any]:
    """An operation as ``operations --json`` and ``plugins list --json`` show it."""
    return {"name": operation.name, "description": operation.description,
            "inputs": {name: {"type": p.type, "required": p.required and p.default is MISSING,
                              **({"default": p.default} if p.default is not MISSING else {}),
                              **({"description": p.description} if p.description else {})}
                       for name, p in operation.inputs.items()}}


__all__ = ["Catalogue", "describe"]
