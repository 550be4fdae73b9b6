"""Plugin ``docker_container``: the ``docker.Container`` node type.

Every container carries the labels ``orchestrator.deployment`` and
``orchestrator.instance``; ``create`` looks for them first, so a create that was killed
after the engine made the container (but before the state said so) adopts that container
instead of making a second one. ``delete`` removes every container with the instance's
labels, so nothing leaks even if the runtime properties were never saved.
"""

from __future__ import annotations

import time
from typing import Any

import docker

from orchestrator import NonRecoverableError, RecoverableError, hookimpl
from plugins_docker import labels, schema
from plugins_docker.container_spec import create_kwargs, image_for
from plugins_docker.engine import EngineSpec, connect, engine_for
from plugins_docker.errors import RETRY_AFTER, engine_errors, engine_message
from plugins_docker.readiness import wait_ready

REMOVAL_WAIT = 30.0  # seconds to wait for a removal the engine already has in progress


@hookimpl
def register_types() -> dict[str, Any]:
    return schema.CONTAINER_TYPES


@hookimpl
def create(ctx: Any) -> None:
    runtime, spec = ctx.instance.runtime_properties, engine_for(ctx)
    deployment, instance = ctx.deployment.id, ctx.instance.id
    with connect(spec) as client:
        container = find_own(client, deployment, instance, spec, ctx.logger)
        if container is not None:
            ctx.logger.info("found container %s (%s) from an earlier attempt", container.name, container.short_id)
        else:
            image = image_for(ctx.node.properties, ctx.instance.relationships)
            kwargs = create_kwargs(ctx.node.properties, deployment, instance, image)
            container = _create(client, kwargs, deployment, instance, spec)
            ctx.logger.info("created container %s (%s) from %s on %s", container.name, container.short_id,
                            image, spec)
        runtime.update(container_id=container.id, name=container.name, image=_image_of(container),
                       state=container.status, engine=str(spec))
        ctx.instance.update()


@hookimpl
def start(ctx: Any) -> None:
    props, runtime, spec = ctx.node.properties, ctx.instance.runtime_properties, engine_for(ctx)
    with connect(spec) as client:
        container = _lookup(client, ctx, spec)
        if container is None:
            raise NonRecoverableError(
                f"container {runtime.get('name') or ctx.instance.id} is gone from {spec} "
                "(removed outside the orchestrator); uninstall and install again")
        if container.status not in ("running", "restarting"):
            with engine_errors(f"starting container {container.name} on {spec}"):
                container.start()
        try:
            state = wait_ready(container, timeout=float(props.get("start_timeout", 60.0)),
                               grace=float(props.get("startup_grace", 1.0)),
                               log_tail=int(props.get("log_tail", 20)), where=str(spec))
        finally:
            runtime["state"] = (container.attrs.get("State") or {}).get("Status", container.status)
        runtime.update(ports=published_ports(container.attrs), pid=state.get("Pid"))
        if state.get("Health"):
            runtime["health"] = state["Health"].get("Status")
    ctx.logger.info("container %s is %s", container.name, runtime.get("health") or "running")


@hookimpl
def stop(ctx: Any) -> None:
    runtime, spec = ctx.instance.runtime_properties, engine_for(ctx)
    timeout = int(ctx.node.properties.get("stop_timeout", 10))
    with connect(spec) as client:
        container = _lookup(client, ctx, spec)
        if container is None:
            runtime["state"] = "gone"
            return
        with engine_errors(f"stopping container {container.name} on {spec}"):
            try:
                container.stop(timeout=timeout)
                container.reload()
            except docker.errors.NotFound:
                runtime["state"] = "gone"
                return
        runtime["state"] = container.status
    ctx.logger.info("stopped container %s", container.name)


@hookimpl
def delete(ctx: Any) -> None:
    runtime, spec = ctx.instance.runtime_properties, engine_for(ctx)
    with connect(spec) as client:
        ids = {c.id for c in _labelled(client, ctx.deployment.id, ctx.instance.id, spec)}
        if runtime.get("container_id"):
            ids.add(runtime["container_id"])
        for container_id in sorted(ids):
            remove(client, container_id, spec)
    for key in ("container_id", "pid", "health", "ports"):
        runtime.pop(key, None)
    runtime["state"] = "deleted"
    ctx.logger.info("removed %d container(s)", len(ids))


# ---------------------------------------------------------------- engine helpers


def find_own(client: docker.DockerClient, deployment: str, instance: str, spec: EngineSpec,
             logger: Any) -> Any:
    """This instance's container by its labels (oldest wins; strays from a bug are removed)."""
    found = sorted(_labelled(client, deployment, instance, spec), key=lambda c: c.attrs.get("Created", ""))
    for extra in found[1:]:
        logger.warning("removing duplicate container %s of %s", extra.name, instance)
        remove(client, extra.id, spec)
    return found[0] if found else None


def _labelled(client: docker.DockerClient, deployment: str, instance: str, spec: EngineSpec) -> list[Any]:
    """Containers with the instance's labels, inspected one by one.

    ``containers.list()`` would inspect them too, but fails as a whole when one of them
    is removed (or still being created) between the listing and its inspection.
    """
    found = []
    with engine_errors(f"listing containers on {spec}"):
        for summary in client.api.containers(all=True, filters=labels.label_filters(deployment, instance)):
            try:
                found.append(client.containers.get(summary["Id"]))
            except docker.errors.NotFound:
                continue
    return found


def _lookup(client: docker.DockerClient, ctx: Any, spec: EngineSpec) -> Any:
    """The container by its recorded id, else by its labels; None if it is gone."""
    container_id = ctx.instance.runtime_properties.get("container_id")
    if container_id:
        with engine_errors(f"inspecting container {container_id[:12]} on {spec}"):
            try:
                return client.containers.get(container_id)
            except docker.errors.NotFound:
                pass
    return find_own(client, ctx.deployment.id, ctx.instance.id, spec, ctx.logger)


def _create(client: docker.DockerClient, kwargs: dict[str, Any], deployment: str, instance: str,
            spec: EngineSpec) -> Any:
    name, image = kwargs["name"], kwargs["image"]
    action = f"creating container {name} from {image} on {spec}"
    with engine_errors(action):
        try:
            return client.containers.create(**kwargs)
        except docker.errors.ImageNotFound as exc:
            raise NonRecoverableError(
                f"{action}: {engine_message(exc)} (pull it first: a {schema.IMAGE_TYPE} node "
                f"with a {schema.USES_IMAGE} relationship, on the same engine)") from exc
        except docker.errors.APIError as exc:
            if exc.status_code != 409:
                raise
            owner = _owner_of(client, name)
            if owner == labels.owner_labels(deployment, instance):  # made by a racing attempt
                return client.containers.get(name)
            raise NonRecoverableError(f"{action}: {engine_message(exc)} (it belongs to "
                                      f"{_describe_owner(owner)})") from exc


def _owner_of(client: docker.DockerClient, name: str) -> dict[str, str] | None:
    try:
        found = client.containers.get(name)
    except docker.errors.NotFound:
        return None
    container_labels = found.labels or {}
    return {k: container_labels[k] for k in (labels.DEPLOYMENT_LABEL, labels.INSTANCE_LABEL)
            if k in container_labels}


def _describe_owner(owner: dict[str, str] | None) -> str:
    if not owner:
        return "something else than this orchestrator"
    return (f"deployment {owner.get(labels.DEPLOYMENT_LABEL, '?')}, "
            f"instance {owner.get(labels.INSTANCE_LABEL, '?')}")


def remove(client: docker.DockerClient, container_id: str, spec: EngineSpec) -> None:
    """Force-remove a container; already gone is fine, a removal in progress is awaited."""
    action = f"removing container {container_id[:12]} on {spec}"
    deadline = time.monotonic() + REMOVAL_WAIT
    with engine_errors(action):
        while True:
            try:
                client.api.remove_container(container_id, force=True, v=False)
                return
            except docker.errors.NotFound:
                return
            except docker.errors.APIError as exc:
                if exc.status_code != 409 or time.monotonic() > deadline:
                    if exc.status_code == 409:
                        raise RecoverableError(f"{action}: {engine_message(exc)}",
                                               retry_after=RETRY_AFTER) from exc
                    raise
                time.sleep(0.2)  # "removal of container ... is already in progress"


def published_ports(attrs: dict[str, Any]) -> dict[str, list[str]]:
    """``{'80/tcp': ['0.0.0.0:8080']}``; empty with host networking (nothing is published)."""
    mapping = (attrs.get("NetworkSettings") or {}).get("Ports") or {}
    return {port: [f"{b.get('HostIp', '')}:{b.get('HostPort', '')}" for b in bindings or []]
            for port, bindings in mapping.items() if bindings}


def _image_of(container: Any) -> str:
    return str((container.attrs.get("Config") or {}).get("Image") or "")
