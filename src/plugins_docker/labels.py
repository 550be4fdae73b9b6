"""How the engine itself records which deployment owns what.

Containers carry the labels ``orchestrator.deployment`` and ``orchestrator.instance``, so
a resumed ``create`` finds its container and leak checks can list a deployment's
containers without the state file (the SDK's ownership markers, the same keys as the AWS
plugin's tags). The engine cannot add labels to a pulled image, so an
image this deployment pulled gets an extra local tag instead:
``orchestrator-pulled/<deployment>:<instance>``.
"""

from __future__ import annotations

import hashlib
import re

from orchestrator.sdk import DEPLOYMENT_MARKER, INSTANCE_MARKER, owner_markers

DEPLOYMENT_LABEL = DEPLOYMENT_MARKER
INSTANCE_LABEL = INSTANCE_MARKER
PULLED_REPOSITORY = "orchestrator-pulled"


def owner_labels(deployment: str, instance: str) -> dict[str, str]:
    """The SDK's ownership markers, as labels."""
    return owner_markers(deployment, instance)


def label_filters(deployment: str, instance: str | None = None) -> dict[str, list[str]]:
    """``filters`` for ``containers.list``: this deployment's (or one instance's) containers."""
    labels = [f"{DEPLOYMENT_LABEL}={deployment}"]
    if instance is not None:
        labels.append(f"{INSTANCE_LABEL}={instance}")
    return {"label": labels}


def container_name(deployment: str, instance: str) -> str:
    """A deterministic, valid container name (``[a-zA-Z0-9][a-zA-Z0-9_.-]*``)."""
    return _slug(f"{deployment}-{instance}", r"[^a-zA-Z0-9_.-]+", 200)


def pulled_repository(deployment: str) -> str:
    """The marker repository of one deployment's pulled images."""
    return f"{PULLED_REPOSITORY}/{_slug(deployment.lower(), r'[^a-z0-9]+', 100, deployment)}"


def pulled_tag(instance: str) -> str:
    return _slug(instance, r"[^a-zA-Z0-9_.-]+", 100)


def pulled_marker(deployment: str, instance: str) -> str:
    """``orchestrator-pulled/<deployment>:<instance>``: the tag that says "we pulled it"."""
    return f"{pulled_repository(deployment)}:{pulled_tag(instance)}"


def _slug(text: str, invalid: str, limit: int, original: str | None = None) -> str:
    """*text* with invalid characters replaced; a hash suffix keeps altered names distinct."""
    original = text if original is None else original
    slug = re.sub(invalid, "-", text).strip("-._")[:limit] or "x"
    if slug != original:
        slug = f"{slug}-{hashlib.sha1(original.encode()).hexdigest()[:8]}"
    return slug
