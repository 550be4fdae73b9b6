"""Image references from ``docker.Image`` properties (shared by both plugins)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator import NonRecoverableError


def image_reference(properties: Mapping[str, Any]) -> str:
    """``repository:tag`` or ``repository@digest``; a tag or digest inside repository wins."""
    from docker.utils import parse_repository_tag  # the Docker SDK, loaded on first use

    repository = str(properties["repository"]).strip()
    if not repository:
        raise NonRecoverableError("docker.Image: repository is empty")
    name, embedded = parse_repository_tag(repository)
    digest = properties.get("digest")
    if digest:
        return f"{name}@{digest}"
    if embedded:
        return f"{name}@{embedded}" if embedded.startswith("sha256:") else f"{name}:{embedded}"
    return f"{name}:{properties.get('tag') or 'latest'}"
