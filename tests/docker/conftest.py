"""Helpers for the Docker plugin tests.

The engine, registries and busybox image are the session fixtures of
``testenv.fixtures`` (``docker_engine``, ``docker_registry``, ``docker_registry_auth``,
``busybox_image``), registered here unless ``tests/conftest.py`` (or ``-p``) already did.
Hook-level tests run under the harness's fixed deployment id ``test``, so
``sweep_test_deployment`` removes what they leave behind.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import docker
import pytest
from docker_helpers import HARNESS_DEPLOYMENT, remove_deployment

from plugins_docker.testing import PLUGINS


@pytest.fixture
def engine_url(docker_engine: Any) -> str:
    return str(docker_engine.base_url)


@pytest.fixture
def docker_host(engine_url: str) -> dict[str, str]:
    """The ``docker_host`` property value that points at the test engine."""
    return {"url": engine_url}


@pytest.fixture
def client(docker_engine: Any) -> docker.DockerClient:
    return docker_engine.client()


@pytest.fixture
def deployment_id(client: docker.DockerClient) -> Iterator[str]:
    """A fresh deployment id; whatever it leaves on the engine is removed afterwards."""
    deployment = f"dk-{uuid.uuid4().hex[:10]}"
    yield deployment
    remove_deployment(client, deployment)


@pytest.fixture
def sweep_test_deployment(client: docker.DockerClient) -> Iterator[None]:
    remove_deployment(client, HARNESS_DEPLOYMENT)
    yield
    remove_deployment(client, HARNESS_DEPLOYMENT)


@pytest.fixture
def docker_orch(orch: Any) -> Any:
    """The ``orch`` harness with both Docker plugins in use."""
    orch.use(*PLUGINS)
    return orch


@pytest.fixture
def container_node(docker_orch: Any, docker_host: dict[str, str], busybox_local: str) -> Callable[..., Any]:
    """A factory of ``docker.Container`` nodes on the test engine, with fast defaults."""

    def make(runtime_properties: dict[str, Any] | None = None, relationships: Any = (),
             **properties: Any) -> Any:
        props = {"image": busybox_local, "docker_host": docker_host, "stop_timeout": 0,
                 "startup_grace": 0.3, "start_timeout": 15.0, **properties}
        props = {k: v for k, v in props.items() if v is not None}
        return docker_orch.node("docker.Container", props, runtime_properties, relationships=relationships)

    return make


@pytest.fixture
def busybox_local(client: docker.DockerClient, busybox_image: str) -> str:
    """The busybox reference, present on the engine (for tests that are not about pulling)."""
    try:
        client.images.get(busybox_image)
    except docker.errors.ImageNotFound:
        client.images.pull(busybox_image)
    return busybox_image
