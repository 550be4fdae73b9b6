"""Plugin ``docker_image``: the ``docker.Image`` node type.

``create`` pulls the image (with registry credentials when given); ``delete`` removes it
only if this deployment pulled it (it was not on the engine before) and the blueprint did
not ask to keep it. Whether the image was already there is recorded *before* pulling, so
a resumed create cannot mistake its own earlier pull for someone else's image.

Several nodes may name one image (by tag, by digest, through ``repository``): each
removes only its own marker tag and its own reference, one removal at a time per
engine, and a reference another node's removal already took is simply gone. The image
itself goes with its last reference, whichever node removes it.

Day 2: another reference (repository, tag, digest) or engine is another image, so it
replaces the node; ``pull_policy``, ``keep_on_delete`` and ``registry_auth`` only matter
to later pulls and deletes, so ``update`` just records them. ``check_drift`` reports an
image removed from the engine, or a tag that now names another image.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from orchestrator import NonRecoverableError, RecoverableError
from orchestrator.sdk import Plugin, Resource
from plugins_docker import labels, schema
from plugins_docker.engine import EngineSpec, connect, engine_for
from plugins_docker.errors import RETRY_AFTER, engine_errors, engine_message, is_permanent_message
from plugins_docker.reference import image_reference

if TYPE_CHECKING:
    import docker

_GONE = ("no such image", "reference does not exist", "not found")
_locks: dict[str, threading.Lock] = {}
_locks_lock = threading.Lock()


def auth_config(properties: Mapping[str, Any]) -> dict[str, str] | None:
    """``registry_auth`` in the shape the engine expects (``serveraddress``)."""
    auth = properties.get("registry_auth")
    if not auth:
        return None
    config = {"username": str(auth["username"]), "password": str(auth["password"])}
    if auth.get("registry"):
        config["serveraddress"] = str(auth["registry"])
    return config


class Image(schema.Validated, Resource):
    def create(self) -> None:
        props, runtime = self.properties, self.runtime
        ref, spec = image_reference(props), engine_for(self.ctx)
        with connect(spec) as client:
            existing = local_image(client, ref, spec)
            if runtime.get("image") != ref or "present_before" not in runtime:
                # First attempt for this reference: a resume keeps the answer it recorded.
                runtime.pop("pulled", None)
                self.save(image=ref, present_before=existing is not None, engine=str(spec))
            policy = props.get("pull_policy", "always")
            if policy == "never" and existing is None:
                raise NonRecoverableError(f"image {ref} is not on the engine {spec} and pull_policy is never")
            if policy == "always" or existing is None:
                self.logger.info("pulling %s on %s", ref, spec)
                pull(client, ref, auth_config(props), spec)
            image = local_image(client, ref, spec)
            if image is None:
                raise RecoverableError(f"image {ref} is not on the engine {spec} right after the pull",
                                       retry_after=RETRY_AFTER)
            if not runtime["present_before"]:
                marker = labels.pulled_marker(self.ctx.deployment.id, self.instance.id)
                with engine_errors(f"tagging {ref} as {marker} on {spec}"):
                    repo, tag = marker.rsplit(":", 1)
                    image.tag(repo, tag)
                runtime.update(pulled=True, marker=marker)
            runtime.update(image_id=image.id, repo_digests=list(image.attrs.get("RepoDigests") or []))
        self.logger.info("image %s is %s (%s)", ref, image.id,
                         "pulled by this deployment" if runtime.get("pulled") else "already present")

    def delete(self) -> None:
        runtime = self.runtime
        ref = runtime.get("image")
        if not ref:
            return  # create never reached the engine
        spec = engine_for(self.ctx)
        # A create that crashed after the pull saved neither "pulled" nor "marker": the marker's
        # name is fixed, and it exists only if this instance pulled the image.
        marker = runtime.get("marker") or labels.pulled_marker(self.ctx.deployment.id, self.instance.id)
        with connect(spec) as client, _engine_lock(spec):
            pulled = bool(runtime.get("pulled")) or local_image(client, marker, spec) is not None
            _remove(client, marker, spec)  # our bookkeeping tag goes in every case
            if not pulled or self.properties.get("keep_on_delete"):
                self.logger.info("keeping image %s (%s)", ref, "keep_on_delete" if pulled
                                 else "it was on the engine before this deployment")
                return
            if not _remove(client, ref, spec, in_use_ok=True):
                self.logger.warning("image %s is still used by a container; left on %s", ref, spec)
                return
        self.logger.info("removed image %s", ref)


    def update(self) -> None:
        """Nothing on the engine changes: the new settings apply to the next pull and to delete."""
        self.logger.info("image %s: %s apply from now on", self.runtime.get("image"),
                         ", ".join(sorted(self.ctx.changes)))

    def check_drift(self) -> dict[str, Any] | None:
        ref, spec = self.runtime.get("image") or image_reference(self.properties), engine_for(self.ctx)
        with connect(spec) as client:
            image = local_image(client, ref, spec)
        if image is None:
            return {"gone": f"image {ref} is no longer on {spec}"}
        recorded = self.runtime.get("image_id")
        if recorded and image.id != recorded:  # pulled or tagged again by hand
            return {"image_id": {"recorded": recorded, "actual": image.id}}
        return None


def _engine_lock(spec: EngineSpec) -> threading.Lock:
    """One image removal at a time per engine: removals of one image's references race in the engine."""
    with _locks_lock:
        return _locks.setdefault(str(spec), threading.Lock())


def local_image(client: docker.DockerClient, ref: str, spec: EngineSpec) -> Any:
    import docker

    with engine_errors(f"inspecting image {ref} on {spec}"):
        try:
            return client.images.get(ref)
        except docker.errors.ImageNotFound:
            return None


def pull(client: docker.DockerClient, ref: str, auth: dict[str, str] | None, spec: EngineSpec) -> None:
    """Pull and read the whole progress stream: errors can arrive in it after HTTP 200."""
    from docker.utils import parse_repository_tag

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
    """Remove one reference; True if it is gone (or never was), False if a container uses it."""
    import docker

    with engine_errors(f"removing image {ref} on {spec}"):
        try:
            client.images.remove(ref)
        except docker.errors.ImageNotFound:
            pass
        except docker.errors.APIError as exc:
            if any(words in engine_message(exc).lower() for words in _GONE):
                return True  # another node's removal took it (the same image, another reference)
            if in_use_ok and exc.status_code == 409:
                return False
            raise
    return True


plugin = Plugin(schema.IMAGE_TYPES, {schema.IMAGE_TYPE: Image})
"""The plugin object the ``docker_image`` entry point names."""
