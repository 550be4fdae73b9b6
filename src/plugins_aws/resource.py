"""The create/delete flow every AWS resource type shares.

``create`` never makes a second resource: it adopts an external one (verified), or
re-checks the id saved by an earlier attempt, or finds one by its ownership tags (a
create that crashed between the API call and saving the id), and only then creates.
``delete`` never touches external resources, and also cleans up a resource whose id
was never saved. Subclasses supply the few AWS calls that differ.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from orchestrator import NonRecoverableError, RecoverableError
from plugins_aws.client import ec2_client
from plugins_aws.errors import call, error_code
from plugins_aws.related import RESOURCE_ID
from plugins_aws.tags import ownership_tags, tag_filters, tag_specifications, tags_of
from plugins_aws.waiting import Waits

EXTERNAL = "external_resource"


class Resource:
    """One AWS resource behind one node instance."""

    kind: ClassVar[str] = "resource"  # for messages: "key pair", "security group", ...
    tag_resource_types: ClassVar[tuple[str, ...]] = ()  # TagSpecifications ResourceType(s)

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self.properties: Mapping[str, Any] = ctx.node.properties
        self.runtime: dict[str, Any] = ctx.instance.runtime_properties
        self.client = ec2_client(self.properties.get("client_config"))
        self.waits = Waits(self.properties)

    # -- what subclasses implement ---------------------------------------------------

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        """The resource as AWS describes it; None if it does not exist."""
        raise NotImplementedError

    def find(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Resources matching ``filters`` (the ownership tags)."""
        raise NotImplementedError

    def create_new(self) -> dict[str, Any]:
        """Create the resource, tagged with ``self.tag_specifications()``; its description."""
        raise NotImplementedError

    def delete_existing(self, resource_id: str) -> None:
        """Delete the resource; must succeed if it is already gone."""
        raise NotImplementedError

    def id_of(self, resource: Mapping[str, Any]) -> str:
        raise NotImplementedError

    def runtime_of(self, resource: Mapping[str, Any]) -> dict[str, Any]:
        """Runtime properties to record from a description (besides ``aws_resource_id``)."""
        return {}

    def is_gone(self, resource: Mapping[str, Any]) -> bool:
        """True for a resource that exists only as a tombstone (a terminated instance)."""
        return False

    def adopt(self, resource: dict[str, Any]) -> dict[str, Any] | None:
        """Take over a resource found by tag; None to delete it and create afresh."""
        return resource

    # -- helpers for subclasses ------------------------------------------------------

    @property
    def ownership(self) -> dict[str, str]:
        return ownership_tags(self.ctx.deployment.id, self.ctx.instance.id)

    def owned(self, resource: Mapping[str, Any]) -> bool:
        """True if ``resource`` carries this node instance's ownership tags."""
        return self.ownership.items() <= tags_of(resource).items()

    def tags(self) -> dict[str, str]:
        """User tags plus the ownership tags (which a user cannot override)."""
        return {**{str(k): str(v) for k, v in (self.properties.get("tags") or {}).items()},
                **self.ownership}

    def tag_specifications(self) -> list[dict[str, Any]]:
        return tag_specifications(self.tag_resource_types, self.tags())

    def default_name(self) -> str:
        """A name unique per deployment and instance, for resources that need one."""
        return f"{self.ctx.deployment.id}-{self.ctx.instance.id}"

    @property
    def resource_id(self) -> str | None:
        return self.runtime.get(RESOURCE_ID)

    @property
    def external(self) -> bool:
        return bool(self.runtime.get(EXTERNAL) or self.properties.get("use_external_resource"))

    def save(self, resource: Mapping[str, Any], external: bool | None = None) -> None:
        """Record the resource in runtime properties and persist them at once."""
        self.runtime.update(self.runtime_of(resource))
        self.runtime[RESOURCE_ID] = self.id_of(resource)
        if external is not None:
            self.runtime[EXTERNAL] = external
        self.ctx.instance.update()

    def forget(self) -> None:
        """Drop what was recorded about a resource that no longer exists."""
        self.runtime.pop(RESOURCE_ID, None)

    def delete_when_free(self, method: Any, what: str, ignore: tuple[str, ...], **params: Any) -> None:
        """Delete, waiting (bounded) while AWS answers ``DependencyViolation``.

        Dependents (instances still terminating, rules in other groups) release a
        resource some time after they are gone; AWS says so with this code.
        """
        logged = False

        def attempt() -> bool:
            nonlocal logged
            try:
                call(method, ignore=ignore, retry_after=self.waits.interval, **params)
            except RecoverableError as exc:
                if error_code(exc.__cause__) != "DependencyViolation":
                    raise
                if not logged:
                    self.ctx.logger.info("%s is still in use; waiting", what)
                    logged = True
                return False
            return True

        self.waits.until(attempt, f"{what} to be free of dependents (DependencyViolation)")

    # -- the flows -------------------------------------------------------------------

    def create(self) -> dict[str, Any]:
        """Adopt, resume or create; returns the resource's description."""
        log = self.ctx.logger
        if self.properties.get("use_external_resource"):
            rid = self.properties.get("resource_id")
            if not rid:
                raise NonRecoverableError(f"use_external_resource is true but no resource_id names "
                                          f"the {self.kind} to use")
            resource = self.describe(rid)
            if resource is None or self.is_gone(resource):
                raise NonRecoverableError(f"use_external_resource: {self.kind} '{rid}' does not exist")
            self.save(resource, external=True)
            log.info("using existing %s %s", self.kind, self.id_of(resource))
            return resource
        if self.resource_id:
            resource = self.describe(self.resource_id)
            if resource is not None and not self.is_gone(resource):
                self.save(resource, external=False)
                return resource
            log.warning("%s %s recorded by an earlier attempt is gone; creating a new one",
                        self.kind, self.resource_id)
            self.forget()
        for found in self.find(tag_filters(self.ownership)):
            if self.is_gone(found):
                continue
            adopted = self.adopt(found)
            if adopted is None:
                log.warning("%s %s left by an interrupted create cannot be used; replacing it",
                            self.kind, self.id_of(found))
                self.delete_existing(self.id_of(found))
                continue
            log.info("found %s %s by its tags (left by an interrupted create); using it",
                     self.kind, self.id_of(adopted))
            self.save(adopted, external=False)
            return adopted
        resource = self.create_new()
        self.save(resource, external=False)
        log.info("created %s %s", self.kind, self.id_of(resource))
        return resource

    def delete(self) -> None:
        """Delete what this instance created (found by tag if its id was never saved)."""
        if self.external:
            self.ctx.logger.info("%s %s is external: left in place", self.kind,
                                 self.resource_id or self.properties.get("resource_id"))
            return
        if self.resource_id:
            ids = [self.resource_id]
        else:
            ids = [self.id_of(r) for r in self.find(tag_filters(self.ownership)) if not self.is_gone(r)]
        for rid in ids:
            self.delete_existing(rid)
            self.ctx.logger.info("deleted %s %s", self.kind, rid)
        self.forget()
