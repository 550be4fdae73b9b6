"""docker.Image against a real engine and real registries: pull, credentials, cleanup."""

from __future__ import annotations

from typing import Any

import docker
import pytest
from docker_helpers import BLUEPRINTS, FAST, HARNESS_DEPLOYMENT, make_absent
from testenv._proc import free_port
from testenv.docker_engine import build_busybox_image

from orchestrator import NonRecoverableError, RecoverableError
from plugins_docker.testing import list_resources

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("sweep_test_deployment")]


def _image(orch: Any, docker_host: dict[str, str], **props: Any) -> Any:
    return orch.node("docker.Image", {"docker_host": docker_host, **props})


def test_pull_then_delete_removes_what_we_pulled(docker_orch: Any, docker_host: dict[str, str],
                                                 client: docker.DockerClient, busybox_image: str,
                                                 engine_url: str) -> None:
    make_absent(client, busybox_image)
    node = _image(docker_orch, docker_host, repository=busybox_image)
    node.call("create")
    rp = node.runtime_properties
    assert (rp["image"], rp["present_before"], rp["pulled"]) == (busybox_image, False, True)
    assert rp["image_id"] == client.images.get(busybox_image).id
    assert list_resources(HARNESS_DEPLOYMENT, engine_url)["images"] == [busybox_image]

    node.call("create")  # a retried/resumed create keeps "we pulled it"
    assert node.runtime_properties["pulled"] is True

    node.call("delete")
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(busybox_image)
    assert list_resources(HARNESS_DEPLOYMENT, engine_url)["images"] == []
    node.call("delete")  # already gone is fine


def test_an_image_that_was_there_before_is_kept(docker_orch: Any, docker_host: dict[str, str],
                                                client: docker.DockerClient, busybox_local: str,
                                                engine_url: str) -> None:
    node = _image(docker_orch, docker_host, repository=busybox_local, pull_policy="if_not_present")
    node.call("create")
    assert node.runtime_properties["present_before"] is True and "pulled" not in node.runtime_properties
    assert list_resources(HARNESS_DEPLOYMENT, engine_url)["images"] == []
    node.call("delete")
    assert client.images.get(busybox_local)


def test_keep_on_delete_keeps_the_image_but_drops_ownership(docker_orch: Any, docker_host: dict[str, str],
                                                            client: docker.DockerClient, busybox_image: str,
                                                            engine_url: str) -> None:
    make_absent(client, busybox_image)
    node = _image(docker_orch, docker_host, repository=busybox_image, keep_on_delete=True)
    node.call("create")
    node.call("delete")
    assert client.images.get(busybox_image)
    assert list_resources(HARNESS_DEPLOYMENT, engine_url)["images"] == []
    assert any("keep_on_delete" in line for line in node.logs)


def test_missing_image_is_non_recoverable(docker_orch: Any, docker_host: dict[str, str],
                                          docker_registry: Any) -> None:
    node = _image(docker_orch, docker_host, repository=f"{docker_registry.address}/testenv/no-such-image")
    with pytest.raises(NonRecoverableError, match=r"manifest unknown|not found"):
        node.call("create")


def test_pull_policy_never_needs_the_image(docker_orch: Any, docker_host: dict[str, str],
                                           client: docker.DockerClient, busybox_image: str) -> None:
    make_absent(client, busybox_image)
    node = _image(docker_orch, docker_host, repository=busybox_image, pull_policy="never")
    with pytest.raises(NonRecoverableError, match="pull_policy is never"):
        node.call("create")


def test_unreachable_registry_is_retried(docker_orch: Any, docker_host: dict[str, str]) -> None:
    node = _image(docker_orch, docker_host, repository=f"127.0.0.1:{free_port()}/testenv/busybox")
    with pytest.raises(RecoverableError, match="connection refused"):
        node.call("create")


def test_unreachable_engine_is_retried(docker_orch: Any) -> None:
    node = _image(docker_orch, {"url": "unix:///nonexistent/docker.sock"}, repository="busybox")
    with pytest.raises(RecoverableError, match=r"nonexistent/docker\.sock"):
        node.call("create")


# ---------------------------------------------------------------- registry credentials


@pytest.fixture(scope="module")
def private_image(docker_engine: Any, docker_registry_auth: Any) -> str:
    """busybox in the registry that requires a login (absent from the engine)."""
    return build_busybox_image(docker_engine, docker_registry_auth, repository="testenv/private")


def _install_private(orch: Any, engine_url: str, ref: str, user: str, password: str, deployment: str) -> Any:
    return orch.install(BLUEPRINTS / "private_registry.yaml", deployment=deployment, options=FAST,
                        inputs={"docker_url": engine_url, "repository": ref, "username": user},
                        secrets={"registry_password": password})


def test_private_registry_right_credentials(docker_orch: Any, engine_url: str, client: docker.DockerClient,
                                            private_image: str, docker_registry_auth: Any,
                                            deployment_id: str) -> None:
    make_absent(client, private_image)
    user, password = docker_registry_auth.auth
    run = _install_private(docker_orch, engine_url, private_image, user, password, deployment_id)
    assert run.ok, run.failures
    assert run.runtime_properties["private_0"]["pulled"] is True
    assert list_resources(deployment_id, engine_url)["images"] == [private_image]
    assert password not in "\n".join(e.message for e in run.events)

    uninstall = docker_orch.uninstall(deployment=deployment_id, options=FAST,
                                      secrets={"registry_password": password})
    assert uninstall.ok, uninstall.failures
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(private_image)


def test_private_registry_wrong_credentials(docker_orch: Any, engine_url: str, client: docker.DockerClient,
                                            private_image: str, docker_registry_auth: Any,
                                            deployment_id: str) -> None:
    make_absent(client, private_image)
    user, _ = docker_registry_auth.auth
    run = _install_private(docker_orch, engine_url, private_image, user, "not-the-password", deployment_id)
    assert not run.ok
    [failure] = run.failures
    assert failure.instance == "private_0" and failure.operation == "create"
    assert "unauthorized" in failure.message and private_image in failure.message
    assert [c.outcome for c in run.calls if c.hook == "create"] == ["NonRecoverableError"]  # no retries
    assert "not-the-password" not in failure.message


def test_private_registry_without_credentials(docker_orch: Any, docker_host: dict[str, str],
                                              client: docker.DockerClient, private_image: str) -> None:
    make_absent(client, private_image)
    node = _image(docker_orch, docker_host, repository=private_image)
    with pytest.raises(NonRecoverableError, match=r"no basic auth credentials|unauthorized"):
        node.call("create")


def test_nodes_sharing_one_image_uninstall_cleanly_every_time(docker_orch: Any, docker_host: dict[str, str],
                                                             client: docker.DockerClient, busybox_image: str,
                                                             engine_url: str, deployment_id: str) -> None:
    """Issue 18: three nodes naming one image (by tag, by digest, via repository) made about one
    uninstall in four fail with "reference does not exist"."""
    make_absent(client, busybox_image)
    pulled = client.images.pull(busybox_image)
    name, tag = busybox_image.rsplit(":", 1)
    digest = next(d for d in pulled.attrs["RepoDigests"] if d.startswith(f"{name}@")).split("@", 1)[1]
    make_absent(client, busybox_image)
    if _has(client, f"{name}@{digest}"):
        client.images.remove(f"{name}@{digest}", force=True)
    bp = docker_orch.blueprint(f"""
        node_templates:
          by_tag: {{type: docker.Image, properties: {{repository: "{name}", tag: "{tag}", docker_host: {{url: "{engine_url}"}}}}}}
          by_digest: {{type: docker.Image, properties: {{repository: "{name}", digest: "{digest}", docker_host: {{url: "{engine_url}"}}}}}}
          in_repository: {{type: docker.Image, properties: {{repository: "{busybox_image}", docker_host: {{url: "{engine_url}"}}}}}}
    """)
    for attempt in range(4):
        deployment = f"{deployment_id}-{attempt}"
        installed = docker_orch.install(bp, deployment=deployment, options=FAST)
        assert installed.ok, installed.failures
        removed = docker_orch.uninstall(deployment=deployment, options=FAST)
        assert removed.ok, removed.failures
        assert list_resources(deployment, engine_url)["images"] == []
        assert not _has(client, busybox_image) and not _has(client, f"{name}@{digest}")


def _has(client: docker.DockerClient, ref: str) -> bool:
    try:
        client.images.get(ref)
    except docker.errors.ImageNotFound:
        return False
    return True
