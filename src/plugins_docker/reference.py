"""Image references from ``docker.Image`` properties (shared by both plugins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import NonRecoverableError


def split_reference(reference: str) -> tuple[str, str | None]:
    """``(name, tag or digest)`` as the Docker SDK's ``parse_repository_tag`` splits them."""
    name, at, digest = reference.rpartition("@")
    if at:
        return name, digest
    name, colon, tag = reference.rpartition(":")
    if colon and "/" not in tag:  # a colon after the last slash is a tag; before it, a port
        return name, tag
    return reference, None


def image_reference(properties: Mapping[str, Any]) -> str:
    """``repository:tag`` or ``repository@digest``; a tag or digest inside repository wins."""
    repository = str(properties["repository"]).strip()
    if not repository:
        raise NonRecoverableError("docker.Image: repository is empty")
    name, embedded = split_reference(repository)
    digest = properties.get("digest")
    if digest:
        return f"{name}@{digest}"
    if embedded:
        return f"{name}@{embedded}" if embedded.startswith("sha256:") else f"{name}:{embedded}"
    return f"{name}:{properties.get('tag') or 'latest'}"
