"""The types a plugin annotates ``ctx`` with: what every hook may read and call.

They are ``Protocol`` classes, not the engine's own: a plugin is checked against the
documented surface only (``ctx._instance`` is not on it), a test fake needs no base class
to pass for a real ``ctx``, and the engine may change how it builds contexts without
touching plugin code. ``tests/test_ctx_types.py`` keeps them and the engine's classes
in step::

    from orchestrator import OperationContext, hookimpl

    @hookimpl
    def create(ctx: OperationContext) -> None:
        ctx.instance.runtime_properties["path"] = ctx.node.properties["path"]
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol


class NodeContext(Protocol):
    """``ctx.node`` (and ``.node`` of a relationship end): the node template."""

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def type_hierarchy(self) -> list[str]:
        """The type's ancestors, root first, the type itself last."""
    @property
    def properties(self) -> Mapping[str, Any]:
        """Resolved properties, defaults filled in; read-only."""


class InstanceContext(Protocol):
    """``ctx.instance``: one node instance and its runtime properties (the plugin's state)."""

    @property
    def id(self) -> str: ...
    @property
    def host_id(self) -> str | None: ...
    runtime_properties: dict[str, Any]

    @property
    def relationships(self) -> list[RelationshipContext]: ...

    def update(self) -> None:
        """Persist runtime property changes now (right after a side effect)."""

    def refresh(self) -> None:
        """Reload runtime properties from the state."""


class EntityContext(Protocol):
    """``ctx.source``, ``ctx.target`` and a relationship's ``.target``: a node and its instance."""

    @property
    def node(self) -> NodeContext: ...
    @property
    def instance(self) -> InstanceContext: ...


class RelationshipContext(Protocol):
    """``ctx.relationship`` and each of ``ctx.instance.relationships``."""

    @property
    def type(self) -> str: ...
    @property
    def type_hierarchy(self) -> list[str]: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...
    @property
    def target(self) -> EntityContext: ...


class OperationInfo(Protocol):
    """``ctx.operation``: the running operation and its retry budget."""

    @property
    def name(self) -> str: ...
    @property
    def retry_number(self) -> int: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def inputs(self) -> dict[str, Any]:
        """A custom operation's inputs (``run_operation``), checked; ``{}`` for the others."""

    def retry(self, message: str = ..., after: float | None = None) -> None:
        """Raise ``OperationRetry``: run this operation again after ``after`` seconds."""


class DeploymentContext(Protocol):
    @property
    def id(self) -> str: ...


class BlueprintContext(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def path(self) -> Path | None: ...
    @property
    def directory(self) -> Path | None: ...


class Logger(Protocol):
    """``ctx.logger``: the ``logging.Logger`` methods; every record becomes an event."""

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...
    def info(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...
    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...
    def error(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...
    def exception(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...
    def critical(self, msg: Any, *args: Any, **kwargs: Any) -> None: ...


class OperationContext(Protocol):
    """``ctx``: everything one lifecycle or relationship hook call may know and do.

    ``node`` and ``instance`` exist in node hooks; ``source``, ``target`` and
    ``relationship`` in relationship hooks (``type`` says which).
    """

    @property
    def type(self) -> str:
        """``"node-instance"`` or ``"relationship-instance"``."""
    @property
    def plugin(self) -> str | None:
        """The name of the plugin that owns the type (its entry point name)."""
    @property
    def node(self) -> NodeContext: ...
    @property
    def instance(self) -> InstanceContext: ...
    @property
    def source(self) -> EntityContext | None: ...
    @property
    def target(self) -> EntityContext | None: ...
    @property
    def relationship(self) -> RelationshipContext | None: ...
    @property
    def deployment(self) -> DeploymentContext: ...
    @property
    def blueprint(self) -> BlueprintContext: ...
    @property
    def operation(self) -> OperationInfo: ...
    @property
    def logger(self) -> Logger: ...
    @property
    def changes(self) -> Mapping[str, tuple[Any, Any]]:
        """In ``update``: each changed property path -> ``(old, new)``; empty elsewhere."""

    def describe(self) -> str:
        """``card_0``, or ``card_0->bob_0`` in relationship hooks."""

    def get_resource(self, path: str) -> bytes: ...
    def download_resource(self, path: str, target: str | None = None) -> str: ...
    def get_resource_and_render(self, path: str, variables: Mapping[str, Any] | None = None) -> bytes: ...
    def download_resource_and_render(self, path: str, target: str | None = None,
                                     variables: Mapping[str, Any] | None = None) -> str: ...


class NodeTemplateInfo(Protocol):
    """What ``validate_node(node)`` gets: a node template as the blueprint declares it.

    ``properties`` are the values known when planning, defaults filled in; a value
    computed at run time (``get_attribute``, ``get_secret``) is still the function, e.g.
    ``{"get_attribute": ["sg", "group_id"]}`` (``orchestrator.sdk.unresolved`` tells).
    """

    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def type_hierarchy(self) -> list[str]: ...
    @property
    def properties(self) -> Mapping[str, Any]: ...
    @property
    def relationships(self) -> list[RelationshipTemplateInfo]: ...


class RelationshipTemplateInfo(Protocol):
    """One relationship of a ``NodeTemplateInfo``: its type and its target template."""

    @property
    def type(self) -> str: ...
    @property
    def type_hierarchy(self) -> list[str]: ...
    @property
    def target(self) -> str:
        """The target node template's name."""
    @property
    def target_type_hierarchy(self) -> list[str]: ...


__all__ = [
    "BlueprintContext",
    "DeploymentContext",
    "EntityContext",
    "InstanceContext",
    "Logger",
    "NodeContext",
    "NodeTemplateInfo",
    "OperationContext",
    "OperationInfo",
    "RelationshipContext",
    "RelationshipTemplateInfo",
]
