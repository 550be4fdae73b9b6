"""Resource classes: one class per type, one method per operation.

A ``Resource`` subclass implements the operations of a node type as methods
(``create``, ``configure``, ``start``, ``stop``, ``delete``, and any later hook taking
``ctx``); a ``Relationship`` subclass those of a relationship type (``preconfigure``,
``postconfigure``, ``establish``, ``unlink``). ``orchestrator.sdk.Plugin`` maps types to
classes and generates the hookimpls: an object is built per hook call with its ``ctx``,
so state lives in runtime properties, never on the class.

``OwnedResource`` adds the flow every cloud resource needs to survive crashes: adopt an
external resource, or resume with the id an earlier attempt saved, or find one by its
ownership markers, and only then create; delete what was saved or what carries the
markers, never an adopted resource.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, TypeVar

from orchestrator.ctx import EntityContext, NodeTemplateInfo, OperationContext
from orchestrator.errors import NonRecoverableError
from orchestrator.sdk.markers import markers_of
from orchestrator.sdk.waiting import wait_until

T = TypeVar("T")

Problem = str | tuple[Any, str]
"""A ``validate_node`` problem: a message, or ``(property path, message)``."""

EXTERNAL_PROPERTIES: dict[str, Any] = {
    "use_external_resource": {"type": "boolean", "default": False,
                              "description": "Adopt the existing resource named by resource_id: checked on "
                                             "create, never deleted by uninstall."},
    "resource_id": {"type": "string", "required": False,
                    "description": "The id (or name) of the resource to adopt."},
}
"""The two properties an adopting type declares (Cloudify's convention), to merge into its own."""


class _Operation:
    """What resource and relationship classes share: ctx, logger, waiting."""

    def __init__(self, ctx: OperationContext) -> None:
        self.ctx = ctx
        self.logger = ctx.logger

    def wait_until(self, probe: Any, what: str, **options: Any) -> Any:
        """``orchestrator.sdk.wait_until`` for this operation."""
        return wait_until(self.ctx, probe, what, **options)

    @property
    def markers(self) -> dict[str, str]:
        """The ownership markers of this node instance (the source's, for a relationship)."""
        return markers_of(self.ctx)

    @classmethod
    def validate(cls, node: NodeTemplateInfo) -> Iterable[Problem]:
        """Problems of a node template of this type, found when the blueprint is loaded."""
        return ()


class Resource(_Operation):
    """The implementation of a node type: subclass it and define the operations it needs."""

    def __init__(self, ctx: OperationContext) -> None:
        super().__init__(ctx)
        self.node = ctx.node
        self.instance = ctx.instance
        self.properties: Mapping[str, Any] = ctx.node.properties
        self.runtime: dict[str, Any] = ctx.instance.runtime_properties

    def save(self, **values: Any) -> None:
        """Set runtime properties and persist them now: call it right after a side effect."""
        self.runtime.update(values)
        self.instance.update()

    def targets(self, type_name: str) -> list[EntityContext]:
        """Targets of this instance's relationships whose node type is (or derives from) ``type_name``."""
        return [rel.target for rel in self.instance.relationships if type_name in rel.target.node.type_hierarchy]


class Relationship(_Operation):
    """The implementation of a relationship type: ``self.source`` and ``self.target`` are its ends.

    Runtime properties of both ends may be changed here (they are merged key by key).
    """

    def __init__(self, ctx: OperationContext) -> None:
        super().__init__(ctx)
        assert ctx.source is not None and ctx.target is not None and ctx.relationship is not None
        self.source: EntityContext = ctx.source
        self.target: EntityContext = ctx.target
        self.properties: Mapping[str, Any] = ctx.relationship.properties


class OwnedResource(Resource):
    """A resource found again by the id it saved or the ownership markers it carries.

    Subclasses implement ``describe``, ``find``, ``create_new``, ``delete_existing`` and
    ``id_of`` (plus ``runtime_of``, ``is_gone``, ``adopt`` when they need to); ``create``
    and ``delete`` here are the crash-safe flows. The type declares
    ``EXTERNAL_PROPERTIES`` to support ``use_external_resource``.
    """

    kind: ClassVar[str] = "resource"  # for messages: "key pair", "container", ...
    id_key: ClassVar[str] = "resource_id"  # the runtime property holding the id
    external_key: ClassVar[str] = "external_resource"  # runtime: true for an adopted resource

    # -- what subclasses implement ---------------------------------------------------

    def describe(self, resource_id: str) -> Any | None:
        """The resource with this id (or name); None if it does not exist."""
        raise NotImplementedError

    def find(self, markers: Mapping[str, str]) -> list[Any]:
        """Resources carrying every one of ``markers`` (this instance's)."""
        raise NotImplementedError

    def create_new(self) -> Any:
        """Make the resource, carrying ``self.markers`` from its first API call; its description."""
        raise NotImplementedError

    def delete_existing(self, resource_id: str) -> None:
        """Delete it; must succeed if it is already gone."""
        raise NotImplementedError

    def id_of(self, resource: Any) -> str:
        raise NotImplementedError

    def runtime_of(self, resource: Any) -> dict[str, Any]:
        """More runtime properties to record from a description (besides the id)."""
        return {}

    def is_gone(self, resource: Any) -> bool:
        """True for a resource that only lingers as a tombstone (a terminated VM)."""
        return False

    def adopt(self, resource: Any) -> Any | None:
        """A resource found by its markers, to take over; None to delete it and create afresh."""
        return resource

    # -- state -----------------------------------------------------------------------

    @property
    def resource_id(self) -> str | None:
        return self.runtime.get(self.id_key)

    @property
    def external(self) -> bool:
        return bool(self.runtime.get(self.external_key) or self.properties.get("use_external_resource"))

    def record(self, resource: Any, external: bool | None = None) -> None:
        """Record the resource in runtime properties and persist them at once."""
        self.runtime.update(self.runtime_of(resource))
        self.runtime[self.id_key] = self.id_of(resource)
        if external is not None:
            self.runtime[self.external_key] = external
        self.instance.update()

    def forget(self) -> None:
        """Drop what was recorded about a resource that no longer exists."""
        self.runtime.pop(self.id_key, None)

    def existing(self, resource_id: str) -> Any | None:
        """``describe``, with a tombstone read as absent."""
        found = self.describe(resource_id)
        return None if found is None or self.is_gone(found) else found

    # -- the flows -------------------------------------------------------------------

    def create(self) -> Any:
        """Adopt, resume, find by markers, or create; returns the resource's description."""
        if self.properties.get("use_external_resource"):
            return self.create_external()
        if self.resource_id:
            resource = self.existing(self.resource_id)
            if resource is not None:
                self.record(resource, external=False)
                return resource
            self.logger.warning("%s %s recorded by an earlier attempt is gone; creating a new one", self.kind,
                                self.resource_id)
            self.forget()
        for found in self.find(self.markers):
            if self.is_gone(found):
                continue
            adopted = self.adopt(found)
            if adopted is None:
                self.logger.warning("%s %s left by an interrupted create cannot be used; replacing it", self.kind,
                                    self.id_of(found))
                self.delete_existing(self.id_of(found))
                continue
            self.logger.info("found %s %s by its markers (left by an interrupted create); using it", self.kind,
                             self.id_of(adopted))
            self.record(adopted, external=False)
            return adopted
        resource = self.create_new()
        self.record(resource, external=False)
        self.logger.info("created %s %s", self.kind, self.id_of(resource))
        return resource

    def create_external(self) -> Any:
        rid = self.properties.get("resource_id")
        if not rid:
            raise NonRecoverableError(f"use_external_resource is true but no resource_id names the {self.kind} "
                                      f"to use")
        resource = self.existing(str(rid))
        if resource is None:
            raise NonRecoverableError(f"use_external_resource: {self.kind} '{rid}' does not exist")
        self.record(resource, external=True)
        self.logger.info("using existing %s %s", self.kind, self.id_of(resource))
        return resource

    def delete(self) -> None:
        """Delete what this instance created (found by its markers if its id was never saved)."""
        if self.external:
            self.logger.info("%s %s is external: left in place", self.kind,
                             self.resource_id or self.properties.get("resource_id"))
            return
        if self.resource_id:
            ids = [self.resource_id]
        else:
            ids = [self.id_of(r) for r in self.find(self.markers) if not self.is_gone(r)]
        for rid in ids:
            self.delete_existing(rid)
            self.logger.info("deleted %s %s", self.kind, rid)
        self.forget()
