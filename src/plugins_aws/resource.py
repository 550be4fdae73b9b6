"""What every AWS resource class shares, on top of the SDK's ``OwnedResource`` flow.

``OwnedResource`` adopts, resumes, finds by ownership markers and only then creates;
this adds the EC2 client (built on first use: boto3 is imported then, not when the
plugin loads), ownership *tags*, waits bounded by the node's ``poll_interval`` /
``wait_timeout``, and deletes that wait out AWS's ``DependencyViolation``. Subclasses
supply the few AWS calls that differ.

Day 2: ``update`` changes the tags in place (subclasses add what else AWS changes in
place; what it cannot is ``replace_on_change`` in the type), and ``check_drift``
describes the resource once and compares it with what was declared.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from orchestrator import NonRecoverableError, RecoverableError
from orchestrator.sdk import OwnedResource
from plugins_aws.changes import changed, previous_tags, tag_drift, tag_edits
from plugins_aws.errors import call, error_code
from plugins_aws.related import RESOURCE_ID
from plugins_aws.tags import legacy, tag_filters, tag_list, tag_specifications, tags_of

EXTERNAL = "external_resource"


def client_for(properties: Mapping[str, Any]) -> Any:
    """The EC2 client of a node's ``client_config``."""
    from plugins_aws.client import ec2_client

    return ec2_client(properties.get("client_config"))


def wait_options(properties: Mapping[str, Any]) -> dict[str, float]:
    """``wait_until`` options from a node's ``poll_interval`` and ``wait_timeout``."""
    return {"max_interval": float(properties.get("poll_interval", 5.0)),
            "timeout": float(properties.get("wait_timeout", 300.0))}


def retag(client: Any, ids: list[str], old: Mapping[str, Any], new: Mapping[str, str], logger: Any) -> None:
    """Go from the ``old`` declared tags to the ``new`` ones on ``ids`` (``changes.tag_edits``)."""
    to_set, to_remove = tag_edits(old, new)
    if to_set:
        call(client.create_tags, Resources=ids, Tags=tag_list(to_set))
    if to_remove:
        call(client.delete_tags, Resources=ids,
             Tags=[{"Key": k, **({"Value": v} if v is not None else {})} for k, v in to_remove.items()])
    logger.info("%s: tags set: %s; removed: %s", ", ".join(ids), ", ".join(sorted(to_set)) or "none",
                ", ".join(sorted(to_remove)) or "none")


class Ec2Client:
    """The EC2 client of the node's ``client_config``, built on first use (boto3 is imported then)."""

    properties: Mapping[str, Any]

    @functools.cached_property
    def client(self) -> Any:
        return client_for(self.properties)


class AwsResource(Ec2Client, OwnedResource):
    """One AWS resource behind one node instance."""

    id_key = RESOURCE_ID
    external_key = EXTERNAL
    tag_resource_types: ClassVar[tuple[str, ...]] = ()  # TagSpecifications ResourceType(s)
    api: ClassVar[tuple[str, str, str, tuple[str, ...]] | None] = None
    """(describe operation, its ids parameter, its result key, the error codes of "no such
    id"): with it, ``describe`` and ``find_tagged`` need no code of their own."""
    filter_parameter: ClassVar[str] = "Filters"  # (DescribeNatGateways says "Filter")

    def describe(self, resource_id: str) -> dict[str, Any] | None:
        if self.api is None:
            raise NotImplementedError
        operation, ids, key, missing = self.api
        found = call(getattr(self.client, operation), ignore=missing, **{ids: [resource_id]})
        items = (found or {}).get(key) or []
        return items[0] if items else None

    # -- OwnedResource, by tags ---------------------------------------------------------

    def find(self, markers: Mapping[str, str]) -> list[Any]:
        return self.find_tagged(tag_filters(markers))

    def find_tagged(self, filters: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Resources matching ``filters`` (tag filters)."""
        if self.api is None:
            raise NotImplementedError
        operation, _, key, _ = self.api
        return call(getattr(self.client, operation), **{self.filter_parameter: filters})[key]

    def delete(self) -> None:
        if not self.resource_id and not self.external:
            try:
                self.client  # noqa: B018 - can one be built at all?
            except NonRecoverableError as exc:  # then create never made anything with it either
                self.logger.warning("nothing to delete: no %s id was saved, and %s", self.kind, exc)
                return
            self.delete_legacy()
        super().delete()

    def delete_legacy(self) -> None:
        """A resource of 0.1 whose create crashed before saving its id carries the old tag spelling."""
        for found in self.find_tagged(tag_filters(legacy(self.markers))):
            if not self.is_gone(found):
                self.delete_existing(self.id_of(found))
                self.logger.info("deleted %s %s (found by its 0.1 tags)", self.kind, self.id_of(found))

    # -- day 2 --------------------------------------------------------------------------

    tag_properties: ClassVar[tuple[str, ...]] = ("tags",)  # properties that make up the tags

    def update(self) -> None:
        """Apply the new tags; an adopted resource is left as it was found."""
        if self.external:
            self.logger.info("%s %s is adopted: its tags and settings are left as they are", self.kind,
                             self.resource_id)
            return
        self.update_tags()

    def previous_tags(self) -> dict[str, object]:
        """The tags the old properties declared (with the ownership tags)."""
        return {**previous_tags(self.properties, self.ctx.changes), **self.markers}

    def update_tags(self) -> None:
        """Set new or changed tags, and remove the ones no longer declared (never anyone else's)."""
        if not changed(self.ctx.changes, *self.tag_properties):
            return
        retag(self.client, self.tag_targets(), self.previous_tags(), self.tags(), self.logger)

    def tag_targets(self) -> list[str]:
        """The ids ``create_tags`` takes for this resource."""
        return [self.require_id()]

    def check_drift(self) -> dict[str, Any] | None:
        """Describe once; ``{"gone": why}``, or what differs from the declared properties."""
        rid = self.require_id()
        resource = self.describe(rid)
        if resource is None:
            return {"gone": f"{self.kind} {rid} no longer exists"}
        if self.is_gone(resource):
            return {"gone": f"{self.kind} {rid} is {self.state_of(resource)}"}
        found = {} if self.external else tag_drift(self.tags(), tags_of(resource))
        found.update(self.drift_of(resource))
        return found or None

    def drift_of(self, resource: dict[str, Any]) -> dict[str, Any]:
        """What differs besides the tags (subclasses)."""
        return {}

    def state_of(self, resource: dict[str, Any]) -> str:
        """The word for a tombstone's state (``terminated``)."""
        return "gone"

    # -- helpers ------------------------------------------------------------------------

    def owned(self, resource: Mapping[str, Any]) -> bool:
        """True if ``resource`` carries this node instance's ownership tags."""
        return self.markers.items() <= tags_of(resource).items()

    def tags(self) -> dict[str, str]:
        """User tags plus the ownership tags (which a user cannot override)."""
        return {**{str(k): str(v) for k, v in (self.properties.get("tags") or {}).items()}, **self.markers}

    def tag_specifications(self) -> list[dict[str, Any]]:
        return tag_specifications(self.tag_resource_types, self.tags())

    def default_name(self) -> str:
        """A name unique per deployment and instance, for resources that need one."""
        return f"{self.ctx.deployment.id}-{self.instance.id}"

    def wait(self, probe: Callable[[], Any], what: str) -> Any:
        """``wait_until`` bounded by the node's ``poll_interval`` and ``wait_timeout``."""
        return self.wait_until(probe, what, **wait_options(self.properties))

    def delete_when_free(self, method: Any, what: str, ignore: tuple[str, ...],
                         busy: tuple[str, ...] = ("DependencyViolation",), **params: Any) -> None:
        """Delete, waiting while AWS answers one of the ``busy`` codes.

        Dependents (instances still terminating, rules in other groups) release a
        resource some time after they are gone; AWS says so with these codes.
        """
        def attempt() -> bool:
            try:
                call(method, ignore=ignore, **params)
            except RecoverableError as exc:
                if error_code(exc.__cause__) not in busy:
                    raise
                return False
            return True

        self.wait(attempt, f"{what} to be free of dependents ({', '.join(busy)})")

    def require_id(self) -> str:
        if not self.resource_id:
            raise NonRecoverableError(f"{self.instance.id} has no {self.kind} id (create did not run)")
        return self.resource_id
