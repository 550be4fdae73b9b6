"""Plugin ``docker_image``: the ``docker.Image`` node type.

``create`` pulls the image (with registry credentials when given); ``delete`` removes it
only if this deployment pulled it (it was not on the engine before) and the blueprint did
not ask to keep it. Whether the image was already there is recorded *before* pulling, so
a resumed create cannot mistake its own earlier pull for someone else's image.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import docker
from docker.utils import parse_repository_tag

from orchestrator import NonRecoverableError, RecoverableError, hookimpl
from plugins_docker import labels, schema
from plugins_docker.engine import EngineSpec, connect, engine_for
from plugins_docker.errors import RETRY_AFTER, engine_errors, is_permanent_message
from plugins_docker.reference import image_reference


@hookimpl
def register_types() -> dict[str, Any]:
    return schema.IMAGE_TYPES


def auth_config(properties: Mapping[str, Any]) -> dict[str, str] | None:
    """``registry_auth`` in the shape the engine expects (``serveraddress``)."""
    auth = properties.get("registry_auth")
    if not auth:
        return None
    config = {"username": str(auth["username"]), "password": str(auth["password"])}
    if auth.get("registry"):
        config["serveraddress"] = str(auth["registry"])
    return config


@hookimpl
def create(ctx: Any) -> None:
    props, runtime = ctx.node.properties, ctx.instance.runtime_properties
    ref, spec = image_reference(props), engine_for(ctx)
    with connect(spec) as client:
        existing = _local_image(client, ref, spec)
        if runtime.get("image") != ref or "present_before" not in runtime:
            # First attempt for this reference: a resume keeps the answer it recorded.
            runtime.update(image=ref, present_before=existing is not None, engine=str(spec))
            runtime.pop("pulled", None)
            ctx.instance.update()
        policy = props.get("pull_policy", "always")
        if policy == "never" and existing is None:
            raise NonRecoverableError(f"image {ref} is not on the engine {spec} and pull_policy is never")
        if policy == "always" or existing is None:
            ctx.logger.info("pulling %s on %s", ref, spec)
            _pull(client, ref, auth_config(props), spec)
        image = _local_image(client, ref, spec)
        if image is None:
            raise RecoverableError(f"image {ref} is not on the engine {spec} right after the pull",
                                   retry_after=RETRY_AFTER)
        if not runtime["present_before"]:
            marker = labels.pulled_marker(ctx.deployment.id, ctx.instance.id)
            with engine_errors(f"tagging {ref} as {marker} on {spec}"):
                repo, tag = marker.rsplit(":", 1)
                image.tag(repo, tag)
            runtime.update(pulled=True, marker=marker)
        runtime.update(image_id=image.id, repo_digests=list(image.attrs.get("RepoDigests") or []))
    ctx.logger.info("image %s is %s (%s)", ref, image.id,
                    "pulled by this deployment" if runtime.get("pulled") else "already present")


@hookimpl
def delete(ctx: Any) -> None:
    props, runtime = ctx.node.properties, ctx.instance.runtime_properties
    ref = runtime.get("image")
    if not ref:
        return  # create never reached the engine
    spec = engine_for(ctx)
    # A create that crashed after the pull saved neither "pulled" nor "marker": the marker's
    # name is fixed, and it exists only if this instance pulled the image.
    marker = runtime.get("marker") or labels.pulled_marker(ctx.deployment.id, ctx.instance.id)
    with connect(spec) as client:
        pulled = bool(runtime.get("pulled")) or _local_image(client, marker, spec) is not None
        _remove(client, marker, spec)  # our bookkeeping tag goes in every case
        if not pulled or props.get("keep_on_delete"):
            ctx.logger.info("keeping image %s (%s)", ref, "keep_on_delete" if pulled
                            else "it was on the engine before this deployment")
            return
        if not _remove(client, ref, spec, in_use_ok=True):
            ctx.logger.warning("image %s is still used by a container; left on %s", ref, spec)
            return
    ctx.logger.info("removed image %s", ref)


def _local_image(client: docker.DockerClient, ref: str, spec: EngineSpec) -> Any:
    with engine_errors(f"inspecting image {ref} on {spec}"):
        try:
            return client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None


def _pull(client: docker.DockerClient, ref: str, auth: dict[str, str] | None, spec: EngineSpec) -> None:
    """Pull and read the whole progress stream: errors can arrive in it after HTTP 200."""
    repository, tag = parse_repository_tag(ref)
    action = f"pulling {ref} on {spec}"
    with engine_errors(action):
        for chunk in client.api.pull(repository, tag, stream=True, decode=True, auth_config=auth):
            error = chunk.get("error") if isinstance(chunk, dict) else None
            if error:
                message = f"{action}: {error}"
                if is_permanent_message(str(error)):
                    raise NonRecoverableError(message)
                raise RecoverableError(message, retry_after=RETRY_AFTER)


def _remove(client: docker.DockerClient, ref: str, spec: EngineSpec, in_use_ok: bool = False) -> bool:
    """Remove one reference; True if it is gone (or never was), False if in use."""
    with engine_errors(f"removing image {ref} on {spec}"):
        try:
            client.images.remove(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if in_use_ok and exc.status_code == 409:
                return False
            raise
    return True
