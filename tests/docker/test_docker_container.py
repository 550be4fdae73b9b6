"""docker.Container hooks one at a time, against a real engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker
import pytest
from docker_helpers import HARNESS_DEPLOYMENT, http_get, labelled
from testenv._proc import free_port

from orchestrator import BlueprintError, NonRecoverableError, OperationRetry, RecoverableError
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

    assert node.run("start") > 0  # it waited (startup grace) by asking to be retried
    assert node.runtime_properties["state"] == "running" and node.runtime_properties["ports"] == {}
    assert "running_since" not in node.runtime_properties and "_waiting" not in node.runtime_properties
    assert http_get(f"http://127.0.0.1:{port}/") == b"ok\n"
    node.run("start")  # already running: fine

    node.run("stop")
    assert node.runtime_properties["state"] == "exited"
    node.run("stop")  # already stopped: fine
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
        node.run("start")
    message = str(info.value)
    assert "exited with code 3" in message
    assert "fatal: no config file" in message and "starting up" in message
    assert node.runtime_properties["state"] == "exited"


def test_crash_looping_container_fails(container_node: Factory) -> None:
    node = container_node(command=["sh", "-c", "echo crash; exit 1"], restart_policy="always", startup_grace=2.0)
    node.call("create")
    with pytest.raises(NonRecoverableError, match=r"(?s)(keeps restarting|exited with code 1).*crash"):
        node.run("start")


def test_start_waits_for_healthy(container_node: Factory) -> None:
    port = free_port()
    script = f"sleep 0.5; mkdir -p /tmp/w && echo ok > /tmp/w/index.html && exec httpd -f -p 127.0.0.1:{port} -h /tmp/w"
    node = container_node(command=["sh", "-c", script], startup_grace=0,
                          healthcheck={"test": f"wget -q -O /dev/null http://127.0.0.1:{port}/", "interval": 0.1,
                                       "retries": 30})
    node.call("create")
    node.run("start")
    assert node.runtime_properties["health"] == "healthy"
    assert http_get(f"http://127.0.0.1:{port}/", timeout=1) == b"ok\n"


def test_unhealthy_container_fails(container_node: Factory) -> None:
    node = container_node(command=["sleep", "60"],
                          healthcheck={"test": "echo probe says no; exit 1", "interval": 0.1, "retries": 1})
    node.call("create")
    with pytest.raises(NonRecoverableError, match=r"unhealthy.*probe says no"):
        node.run("start")


def test_a_start_that_never_gets_ready_gives_up_after_start_timeout(container_node: Factory) -> None:
    node = container_node(command=["sleep", "60"], start_timeout=0.3,
                          healthcheck={"test": "exit 1", "interval": 30, "retries": 3})
    node.call("create")
    with pytest.raises(OperationRetry, match=r"waiting for container .* to be ready"):
        node.call("start")  # one attempt: not ready yet, asks to be retried
    with pytest.raises(NonRecoverableError, match=r"gave up waiting for container .* to be ready after .*timeout 0\.3s"):
        node.run("start")


def test_missing_image_is_non_recoverable(container_node: Factory, docker_registry: Any) -> None:
    node = container_node(image=f"{docker_registry.address}/testenv/not-pulled:1")
    with pytest.raises(NonRecoverableError, match=r"(?i)no such image.*docker\.Image"):
        node.call("create")


def test_no_image_at_all_is_refused_at_validate_time(container_node: Factory) -> None:
    with pytest.raises(BlueprintError, match="no image: set the image property or add a relationship"):
        container_node(image=None)


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
    node.call("delete")  # issue 18: nothing was created there, so the engine is not needed to delete it
    assert "create never reached an engine" in node.logs[-1]


def test_a_compute_host_can_declare_its_engine(docker_orch: Any, container_node: Factory, engine_url: str,
                                               client: docker.DockerClient) -> None:
    """Issue 18: the docs said an orchestrator.nodes.Compute host can simply declare docker_host."""
    host = docker_orch.node("orchestrator.nodes.Compute", {"docker_host": {"url": engine_url}})
    node = container_node(docker_host=None, command=["sleep", "60"], relationships=[(CONTAINED_IN, host)])
    node.call("create")
    assert "docker_host property" in node.runtime_properties["engine"]
    assert len(_own(client, node.id)) == 1
    node.call("delete")


def test_docker_host_without_url_is_refused_at_validate_time(container_node: Factory) -> None:
    with pytest.raises(BlueprintError, match=r"property 'docker_host': url is required"):
        container_node(docker_host={"tls_verify": True})
