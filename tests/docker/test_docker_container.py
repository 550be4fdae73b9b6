"""docker.Container hooks one at a time, against a real engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest
from docker_helpers import HARNESS_DEPLOYMENT, http_get, labelled
from testenv._proc import free_port

from orchestrator import NonRecoverableError, RecoverableError
from plugins_docker import labels
from plugins_docker.testing import list_resources

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sweep_test_deployment")]

CONTAINED_IN = "orchestrator.relationships.contained_in"
Factory = Callable[..., Any]


def _own(client: docker.DockerClient, instance: str) -> list[str]:
    return [c["Id"] for c in labelled(client, HARNESS_DEPLOYMENT, instance)]


def _httpd(port: int) -> list[str]:
    return ["sh", "-c", f"mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 127.0.0.1:{port} -h /tmp/w"]


def test_lifecycle_labels_and_runtime_properties(container_node: Factory, client: docker.DockerClient,
                                                 engine_url: str) -> None:
    port = free_port()
    node = container_node(command=_httpd(port), labels={"team": "web"}, environment={"MODE": "test"})
    node.call("create")
    rp = node.runtime_properties
    assert rp["name"] == f"{HARNESS_DEPLOYMENT}-{node.id}" and rp["state"] == "created"
    container = client.containers.get(rp["container_id"])
    assert container.labels == {"team": "web", labels.DEPLOYMENT_LABEL: HARNESS_DEPLOYMENT,
                                labels.INSTANCE_LABEL: node.id}
    assert "MODE=test" in container.attrs["Config"]["Env"]
    assert container.attrs["HostConfig"]["NetworkMode"] == "host"

    node.call("start")
    assert node.runtime_properties["state"] == "running" and node.runtime_properties["ports"] == {}
    assert http_get(f"http://127.0.0.1:{port}/") == b"ok\n"
    node.call("start")  # already running: fine

    node.call("stop")
    assert node.runtime_properties["state"] == "exited"
    node.call("stop")  # already stopped: fine
    node.call("delete")
    assert _own(client, node.id) == []
    assert list_resources(HARNESS_DEPLOYMENT, engine_url)["containers"] == []
    node.call("delete")  # already gone: fine


def test_resumed_create_adopts_the_labelled_container(container_node: Factory,
                                                      client: docker.DockerClient) -> None:
    node = container_node(command=["sleep", "60"])
    node.call("create")
    first = node.runtime_properties["container_id"]
    node.runtime_properties = {}  # as if killed after the engine call, before the state write
    node.call("create")
    assert node.runtime_properties["container_id"] == first
    assert _own(client, node.id) == [first]
    assert any("earlier attempt" in line for line in node.logs)


def test_delete_finds_containers_by_label_without_runtime_properties(container_node: Factory,
                                                                     client: docker.DockerClient) -> None:
    node = container_node(command=["sleep", "60"])
    node.call("create")
    node.runtime_properties = {}
    node.call("delete")
    assert _own(client, node.id) == []


def test_container_exiting_at_once_fails_with_its_log(container_node: Factory) -> None:
    node = container_node(command=["sh", "-c", "echo starting up; echo 'fatal: no config file' >&2; exit 3"])
    node.call("create")
    with pytest.raises(NonRecoverableError) as info:
        node.call("start")
    message = str(info.value)
    assert "exited with code 3" in message
    assert "fatal: no config file" in message and "starting up" in message
    assert node.runtime_properties["state"] == "exited"


def test_crash_looping_container_fails(container_node: Factory) -> None:
    node = container_node(command=["sh", "-c", "echo crash; exit 1"], restart_policy="always", startup_grace=2.0)
    node.call("create")
    with pytest.raises(NonRecoverableError, match=r"(?s)(keeps restarting|exited with code 1).*crash"):
        node.call("start")


def test_start_waits_for_healthy(container_node: Factory) -> None:
    port = free_port()
    script = f"sleep 0.5; mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 127.0.0.1:{port} -h /tmp/w"
    node = container_node(command=["sh", "-c", script], startup_grace=0,
                          healthcheck={"test": f"wget -q -O /dev/null http://127.0.0.1:{port}/", "interval": 0.1,
                                       "retries": 30})
    node.call("create")
    node.call("start")
    assert node.runtime_properties["health"] == "healthy"
    assert http_get(f"http://127.0.0.1:{port}/", timeout=1) == b"ok\n"


def test_unhealthy_container_fails(container_node: Factory) -> None:
    node = container_node(command=["sleep", "60"],
                          healthcheck={"test": "echo probe says no; exit 1", "interval": 0.1, "retries": 1})
    node.call("create")
    with pytest.raises(NonRecoverableError, match=r"unhealthy.*probe says no"):
        node.call("start")


def test_slow_start_is_retried(container_node: Factory) -> None:
    node = container_node(command=["sleep", "60"], start_timeout=0.3,
                          healthcheck={"test": "exit 1", "interval": 30, "retries": 3})
    node.call("create")
    with pytest.raises(RecoverableError, match="not ready"):
        node.call("start")


def test_missing_image_is_non_recoverable(container_node: Factory, docker_registry: Any) -> None:
    node = container_node(image=f"{docker_registry.address}/testenv/not-pulled:1")
    with pytest.raises(NonRecoverableError, match=r"(?i)no such image.*docker\.Image"):
        node.call("create")


def test_no_image_at_all_is_non_recoverable(container_node: Factory) -> None:
    node = container_node(image=None)
    with pytest.raises(NonRecoverableError, match="no image"):
        node.call("create")


def test_bad_name_is_non_recoverable(container_node: Factory) -> None:
    node = container_node(name="no spaces allowed!")
    with pytest.raises(NonRecoverableError, match=r"(?i)invalid container name"):
        node.call("create")


def test_name_taken_by_a_stranger_is_non_recoverable(container_node: Factory, client: docker.DockerClient,
                                                     busybox_local: str) -> None:
    stranger = client.containers.create(busybox_local, ["sleep", "60"], name="dk-stranger", network_mode="host")
    try:
        node = container_node(name="dk-stranger")
        with pytest.raises(NonRecoverableError, match=r"already in use.*something else"):
            node.call("create")
    finally:
        stranger.remove(force=True)


def test_image_from_a_related_image_node(docker_orch: Any, container_node: Factory, docker_host: dict[str, str],
                                         busybox_local: str, client: docker.DockerClient) -> None:
    image = docker_orch.node("docker.Image", {"repository": busybox_local, "docker_host": docker_host,
                                              "pull_policy": "if_not_present"})
    image.call("create")
    node = container_node(image=None, command=["sleep", "60"],
                          relationships=[("docker.relationships.container_uses_image", image)])
    node.call("create")
    assert client.containers.get(node.runtime_properties["container_id"]).attrs["Config"]["Image"] == busybox_local


# ---------------------------------------------------------------- which engine, for real


def test_engine_of_the_contained_in_host(docker_orch: Any, container_node: Factory, engine_url: str,
                                         monkeypatch: pytest.MonkeyPatch, client: docker.DockerClient) -> None:
    """A Compute host publishes the engine at runtime; the container has no docker_host."""
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/env.sock")  # must lose to the host
    host = docker_orch.node("orchestrator.nodes.Compute", runtime_properties={"docker_host": {"url": engine_url}})
    node = container_node(docker_host=None, command=["sleep", "60"], relationships=[(CONTAINED_IN, host)])
    node.call("create")
    assert "runtime property" in node.runtime_properties["engine"]
    assert len(_own(client, node.id)) == 1
    node.call("delete")


def test_node_property_beats_the_host(docker_orch: Any, container_node: Factory, engine_url: str) -> None:
    host = docker_orch.node("orchestrator.nodes.Compute",
                            runtime_properties={"docker_host": {"url": "unix:///nonexistent/host.sock"}})
    node = container_node(command=["sleep", "60"], relationships=[(CONTAINED_IN, host)])
    node.call("create")
    assert node.runtime_properties["engine"].startswith(engine_url)


def test_docker_host_environment(container_node: Factory, engine_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", engine_url)
    node = container_node(docker_host=None, command=["sleep", "60"])
    node.call("create")
    assert "DOCKER_HOST" in node.runtime_properties["engine"]


def test_unreachable_engine_is_recoverable(container_node: Factory) -> None:
    node = container_node(docker_host={"url": "unix:///nonexistent/docker.sock"})
    with pytest.raises(RecoverableError, match="connecting to the Docker engine"):
        node.call("create")
