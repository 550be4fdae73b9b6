"""Cloudify ``interfaces``: which operations run, which are turned off, which we refuse.

Cloudify runs an operation's ``implementation``: a task of a plugin (``aws.cloudify_aws.
ec2.instance.create``) or a script. Here a pack's own plugin stands for its tasks (the
mapped type's hooks do that work), an operation set to ``{}`` does nothing, and anything
else (scripts, plugins nobody ships, agents) is refused where it is written, because
running the node without it would not be what the blueprint asked for.

Merging follows Cloudify's ``dsl_parser``: a derived type's operation replaces its
parent's; a template's operation without ``implementation`` keeps the type's and merges
its inputs over the type's input defaults; ``{}`` is the no-op.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from orchestrator.dsl.problems import Mark, Problems, shown
from orchestrator.dsl.yaml_source import key_mark, mark_of

LIFECYCLE = "cloudify.interfaces.lifecycle"
RELATIONSHIP_LIFECYCLE = "cloudify.interfaces.relationship_lifecycle"
OUR_LIFECYCLE = ("create", "configure", "start", "stop", "delete")
# Cloudify's extra steps around ours: a pack's own implementation of one is part of the
# mapped type's hooks; a script there is refused like any script.
AROUND = ("precreate", "poststart", "prestop", "postdelete")
OPERATION_KEYS = ("implementation", "inputs", "executor", "max_retries", "retry_interval", "timeout",
                  "timeout_recoverable")
SCRIPT_SUFFIXES = (".sh", ".py", ".ps1", ".bat", ".cmd", ".bash", ".yaml", ".yml", ".j2")


@attrs.define
class Operation:
    implementation: str
    inputs: dict[str, Any]
    executor: str | None
    mark: Mark


NO_OP_MARK = Mark("", 0, 0)


def operation(raw: Any, mark: Mark, schema: bool) -> Operation:
    """One operation as written (``schema``: a type's, whose inputs are definitions with defaults)."""
    if isinstance(raw, str):
        return Operation(raw, {}, None, mark)
    if not isinstance(raw, dict):
        return Operation("", {}, None, mark)
    inputs = raw.get("inputs") or {}
    if not isinstance(inputs, dict):
        inputs = {}
    if schema:
        inputs = {k: _default_of(v) for k, v in inputs.items()}
    impl = raw.get("implementation") or ""
    return Operation(str(impl), dict(inputs), raw.get("executor"), mark_of(raw, "implementation") if impl else mark)


def _default_of(value: Any) -> Any:
    """A type's operation input is a schema (``{type, default, description}``) or, in old
    blueprints, the value itself."""
    if isinstance(value, dict) and value and set(value) <= {"description", "type", "default", "required"}:
        return value.get("default")
    return value


def merge_template(type_op: Operation | None, raw: Any, mark: Mark) -> Operation:
    """A template's operation over its type's, as Cloudify merges them."""
    mine = operation(raw, mark, schema=False)
    if type_op is None:
        return mine
    if raw is None:
        return type_op
    if not mine.implementation and not mine.inputs and mine.executor is None:
        return Operation("", {}, None, mark)  # {}: the no-op
    if not mine.implementation or mine.implementation == type_op.implementation:
        return Operation(type_op.implementation, {**type_op.inputs, **mine.inputs},
                         mine.executor or type_op.executor, type_op.mark if not mine.implementation else mine.mark)
    return mine


def type_interfaces(hierarchy: Iterable[Mapping[str, Any]], key: str = "interfaces") -> dict[str, dict[str, Operation]]:
    """The operations of a type (its definitions root first): a derived type's replace its parent's."""
    result: dict[str, dict[str, Operation]] = {}
    for body in hierarchy:
        ifaces = body.get(key) if isinstance(body, dict) else None
        if not isinstance(ifaces, dict):
            continue
        for iname, ops in ifaces.items():
            if not isinstance(ops, dict):
                continue
            into = result.setdefault(str(iname), {})
            for oname, raw in ops.items():
                into[str(oname)] = operation(raw, key_mark(ops, oname), schema=True)
    return result


def template_interfaces(types: dict[str, dict[str, Operation]], raw: Any, where: str,
                        problems: Problems, mark: Mark) -> dict[str, dict[str, Operation]]:
    """A template's ``interfaces`` merged over its type's."""
    result = {iname: dict(ops) for iname, ops in types.items()}
    if raw is None:
        return result
    if not isinstance(raw, dict):
        problems.add(mark, f"{where}: interfaces must be a mapping of interface name to operations")
        return result
    for iname, ops in raw.items():
        if not isinstance(ops, dict):
            problems.add(mark_of(raw, iname), f"{where}: interface '{shown(iname)}' must be a mapping of operations")
            continue
        into = result.setdefault(str(iname), {})
        for oname, op in ops.items():
            if isinstance(op, dict):
                for key in op:
                    if key not in OPERATION_KEYS:
                        problems.add(key_mark(op, key), f"{where}: operation '{iname}.{oname}': unknown key "
                                     f"'{shown(key)}'")
            into[str(oname)] = merge_template(into.get(str(oname)), op, key_mark(ops, oname))
    return result


def classify(op: Operation, pack_plugins: Mapping[str, str]) -> str:
    """``noop``, ``pack`` (a task of a plugin a loaded pack stands for), ``script``, ``inline``
    (a script written in the blueprint: Cloudify's ``_is_inline_script``, several lines) or ``plugin``."""
    impl = op.implementation.strip()
    if not impl:
        return "noop"
    if "\n" in impl:
        return "inline"
    head = impl.split(".", 1)[0]
    if "/" in impl or impl.endswith(SCRIPT_SUFFIXES) or head == "script":
        return "script"
    if head in pack_plugins:
        return "pack"
    return "plugin"


def refusal(kind: str, iname: str, oname: str, op: Operation, where: str) -> str:
    """The ``not supported:`` message for an operation we cannot run."""
    name = f"{iname.rsplit('.', 1)[-1]}.{oname}"
    if kind == "script":
        return (f"not supported: {where}: operation '{name}' runs the script '{shown(op.implementation)}' "
                "(orchestrator runs plugin hooks, not scripts on hosts)")
    if kind == "inline":
        first = op.implementation.strip().splitlines()[0]
        return (f"not supported: {where}: operation '{name}' is a script written in the blueprint ('{shown(first)}' "
                "...) (orchestrator runs plugin hooks, not scripts on hosts)")
    head = op.implementation.split(".", 1)[0]
    return (f"not supported: {where}: operation '{name}' is a task of plugin '{shown(head)}', which no installed "
            "orchestrator plugin provides")


__all__ = ["AROUND", "LIFECYCLE", "OUR_LIFECYCLE", "RELATIONSHIP_LIFECYCLE", "Operation", "classify",
           "merge_template", "operation", "refusal", "template_interfaces", "type_interfaces"]
