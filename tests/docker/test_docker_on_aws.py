"""The Docker plugin on an AWS instance's engine (moto for EC2, the test engine for Docker).

Shows the contract between the two distributions: ``aws.ec2.Instance`` publishes the
runtime property ``docker_host`` and docker nodes ``contained_in`` it use that engine.
"""

from __future__ import annotations

from typing import Any

import pytest
from docker_helpers import BLUEPRINTS, FAST, labelled

from plugins_docker import labels
from plugins_docker.testing import PLUGINS, list_resources

pytestmark = pytest.mark.integration

aws_testing = pytest.importorskip("plugins_aws.testing")


def test_container_runs_on_the_engine_its_instance_publishes(orch: Any, aws_env: Any, engine_url: str,
                                                             client: Any, busybox_local: str,
                                                             deployment_id: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/not-this-one.sock")  # must not be used
    orch.use(*aws_testing.PLUGINS, *PLUGINS)
    inputs = {"docker_url": engine_url, "repository": busybox_local}
    run = orch.install(BLUEPRINTS / "on_aws_instance.yaml", inputs=inputs, deployment=deployment_id,
                       options=FAST)
    assert run.ok, run.failures
    assert run.runtime_properties["vm_0"]["docker_host"]["url"] == engine_url
    app = run.runtime_properties["app_0"]
    assert app["engine"] == f"{engine_url} (from host vm_0's docker_host runtime property)"
    [container] = labelled(client, deployment_id)
    assert container["Id"] == app["container_id"]
    assert container["Labels"][labels.INSTANCE_LABEL] == "app_0"

    down = orch.uninstall(deployment=deployment_id, options=FAST)
    assert down.ok, down.failures
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}
    assert not any(aws_testing.list_resources(deployment_id).values())
