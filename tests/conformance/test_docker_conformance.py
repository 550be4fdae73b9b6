"""Conformance of the Docker node types on a real engine (and a real local registry).

- ``docker.Image`` pulls a busybox copy kept in the registry under its own name, made
  absent from the engine before each deployment, so every install really pulls it and
  the deployment's marker tag makes it listable (``plugins_docker.testing``).
- ``docker.Container`` runs on an ``orchestrator.nodes.Compute`` host whose ``docker_host``
  names the test engine (extra blueprint text, and ``contained_in``); ``running`` lists the
  deployment's running containers, for "stop stops".
"""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import pytest

from orchestrator.conformance import Env, Subject, conformance_tests
from plugins_docker import labels
from plugins_docker.testing import PLUGINS, list_resources

pytestmark = pytest.mark.integration

CONFORMANCE_REPOSITORY = "conformance/busybox"


@pytest.fixture(scope="module")
def conformance_image(docker_engine: Any, docker_registry: Any, busybox_image: str) -> str:
    """``<registry>/conformance/busybox:latest``: in the registry, not on the engine."""
    client = docker_engine.client()
    repository = f"{docker_registry.address}/{CONFORMANCE_REPOSITORY}"
    if not docker_registry.has_manifest(CONFORMANCE_REPOSITORY, "latest"):
        # An image of its own (not another tag of busybox), so listing it lists one reference.
        client.images.pull(busybox_image)
        container = client.containers.create(busybox_image, command=["true"])
        try:
            container.commit(repository, "latest", changes=["LABEL orchestrator.conformance=1"])
        finally:
            container.remove(force=True)
        for chunk in client.api.push(repository, "latest", stream=True, decode=True):
            assert "error" not in chunk, chunk
    ref = f"{repository}:latest"
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref)
    return ref


@pytest.fixture(scope="module")
def runnable_image(docker_engine: Any, busybox_image: str) -> str:
    """The busybox reference, present on the engine (containers are not about pulling)."""
    client = docker_engine.client()
    try:
        client.images.get(busybox_image)
    except docker.errors.ImageNotFound:
        client.images.pull(busybox_image)
    return busybox_image


def engine(env: Env) -> Any:
    return env.fixtures.docker_engine


def client(env: Env) -> docker.DockerClient:
    return engine(env).client()


def docker_host(env: Env) -> dict[str, str]:
    return {"url": str(engine(env).base_url)}


def listed(name: str) -> Any:
    return lambda env: list_resources(env.deployment, str(engine(env).base_url))[name]


def everything(env: Env) -> dict[str, list[str]]:
    return list_resources(env.deployment, str(engine(env).base_url))


def sweep(env: Env) -> None:
    """Remove the deployment's containers and marker tags (what a failing check leaked)."""
    api = client(env).api
    for summary in api.containers(all=True, filters=labels.label_filters(env.deployment)):
        with contextlib.suppress(docker.errors.NotFound):
            api.remove_container(summary["Id"], force=True)
    repository = labels.pulled_repository(env.deployment)
    for image in api.images(name=repository):
        for tag in image.get("RepoTags") or []:
            with contextlib.suppress(docker.errors.ImageNotFound):
                api.remove_image(tag, force=True)


# ---------------------------------------------------------------- docker.Image


def image_absent(env: Env) -> None:
    with contextlib.suppress(docker.errors.ImageNotFound):
        client(env).images.remove(env.fixtures.conformance_image, force=True)


def image_sweep(env: Env) -> None:
    sweep(env)
    image_absent(env)


def remove_image(env: Env, ref: str) -> None:
    """Delete the image out of band: every tag of it, the deployment's marker included."""
    images = client(env).images
    images.remove(images.get(ref).id, force=True)


def image_properties(env: Env) -> dict[str, Any]:
    return {"repository": env.fixtures.conformance_image, "docker_host": docker_host(env)}


def missing_image_properties(env: Env) -> dict[str, Any]:
    registry = env.fixtures.conformance_image.split("/", 1)[0]
    return {"repository": f"{registry}/conformance/missing:nope", "docker_host": docker_host(env)}


# ---------------------------------------------------------------- docker.Container

def host_blueprint(env: Env) -> dict[str, Any]:
    """A plain Compute host declaring its engine (issue 18: the docs said it could)."""
    return {"node_templates": {"host": {"type": "orchestrator.nodes.Compute",
                                        "properties": {"docker_host": docker_host(env)}}}}


def running(env: Env) -> list[str]:
    """The probe of "stop stops": the deployment's running containers."""
    found = client(env).api.containers(filters={**labels.label_filters(env.deployment), "status": ["running"]})
    return sorted((c.get("Names") or [c["Id"]])[0].lstrip("/") for c in found)


def container_properties(env: Env) -> dict[str, Any]:
    return {"image": env.fixtures.runnable_image, "command": ["sleep", "600"], "stop_timeout": 0,
            "startup_grace": 0.1, "start_timeout": 15.0}


def remove_container(env: Env, name: str) -> None:
    client(env).api.remove_container(name, force=True)


SUBJECTS = [
    Subject("docker.Image", listed("images"), list_leftovers=everything,
            properties=image_properties, invalid_properties=missing_image_properties,
            setup=image_absent, cleanup=image_sweep, delete=remove_image,
            fixtures=["conformance_image"]),
    Subject("docker.Container", listed("containers"), list_leftovers=everything,
            properties=container_properties,
            invalid_properties=lambda env: {**container_properties(env), "image": "conformance/missing:nope"},
            blueprint=host_blueprint,
            relationships=[{"type": "orchestrator.relationships.contained_in", "target": "host"}],
            running=running, cleanup=sweep, delete=remove_container, fixtures=["runnable_image"]),
    Subject("docker.Container", listed("containers"), list_leftovers=everything, name="docker.Container (graceful stop)",
            properties=lambda env: {**container_properties(env), "stop_timeout": 5,
                                    "command": ["sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait"]},
            blueprint=host_blueprint,
            relationships=[{"type": "orchestrator.relationships.contained_in", "target": "host"}],
            running=running, cleanup=sweep, fixtures=["runnable_image"],
            checks=["stop_stops", "operations_twice", "crash_in_operations"]),
]

TestDockerConformance = conformance_tests(*SUBJECTS, plugins=PLUGINS, fixtures=["docker_engine"])


def test_every_docker_node_type_has_a_subject() -> None:
    from orchestrator.plugins import get_plugin_manager

    pm = get_plugin_manager(PLUGINS, entry_points=False, env={})
    node_types = {t for source in pm.type_sources for t in (source.sections.get("node_types") or {})}
    assert {t for t in node_types if t.startswith("docker.")} == {s.type for s in SUBJECTS}
