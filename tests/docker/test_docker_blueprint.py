"""Whole blueprints through the in-process harness: install, use, uninstall, no leaks."""

from __future__ import annotations

from typing import Any

import docker
import pytest
from docker_helpers import BLUEPRINTS, FAST, http_get, make_absent
from testenv._proc import free_port

from plugins_docker import labels
from plugins_docker.testing import list_resources

pytestmark = pytest.mark.integration


def test_http_server_install_serve_uninstall(docker_orch: Any, engine_url: str, client: docker.DockerClient,
                                             busybox_image: str, deployment_id: str) -> None:
    make_absent(client, busybox_image)  # so install really pulls it
    port = free_port()
    inputs = {"docker_url": engine_url, "repository": busybox_image, "port": port}

    run = docker_orch.install(BLUEPRINTS / "http.yaml", inputs=inputs, deployment=deployment_id, options=FAST)
    assert run.ok, run.failures
    assert run.states == {"busybox_0": "started", "web_0": "started"}
    assert run.calls_of("create") == ["busybox_0", "web_0"]
    web = run.runtime_properties["web_0"]
    assert (web["state"], web["health"], web["image"]) == ("running", "healthy", busybox_image)
    assert run.outputs["container"] == labels.container_name(deployment_id, "web_0")
    assert http_get(run.outputs["url"]) == b"hello-from-orchestrator\n"
    assert list_resources(deployment_id, engine_url) == {
        "containers": [labels.container_name(deployment_id, "web_0")], "images": [busybox_image]}

    again = docker_orch.install(BLUEPRINTS / "http.yaml", inputs=inputs, deployment=deployment_id, options=FAST)
    assert again.ok and again.calls == []  # everything is done: nothing runs twice

    down = docker_orch.uninstall(deployment=deployment_id, options=FAST)
    assert down.ok, down.failures
    deletes = [c.instance for c in down.calls if c.hook == "delete"]
    assert deletes == ["web_0", "busybox_0"]  # the container goes before its image
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(busybox_image)


def test_failed_start_reports_log_and_uninstall_cleans_up(docker_orch: Any, engine_url: str,
                                                          busybox_local: str, deployment_id: str) -> None:
    blueprint = f"""
    node_templates:
      broken:
        type: docker.Container
        properties:
          image: {busybox_local}
          command: [sh, -c, "echo 'listen: address already in use' >&2; exit 98"]
          docker_host: {{url: "{engine_url}"}}
    """
    run = docker_orch.install(blueprint, deployment=deployment_id, options=FAST)
    assert not run.ok
    [failure] = run.failures
    assert failure.operation == "start" and "exited with code 98" in failure.message
    assert "address already in use" in failure.message
    # failed as soon as the exit is seen, never retried to exhaustion (on a loaded machine the
    # first look may come before the process exits: it is then still in its startup grace)
    *waits, last = [c.outcome for c in run.calls if c.hook == "start"]
    assert last == "NonRecoverableError" and set(waits) <= {"OperationRetry"} and len(waits) <= 3
    assert docker_orch.uninstall(deployment=deployment_id, options=FAST).ok
    assert list_resources(deployment_id, engine_url)["containers"] == []
