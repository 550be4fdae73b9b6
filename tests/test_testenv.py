"""The testenv fixtures provide real engines: dockerd, registries, moto server, PostgreSQL."""

from __future__ import annotations

import contextlib
import time
import urllib.error
import urllib.request

import boto3
import docker
import pytest
from testenv import free_port, http_status
from testenv.docker_engine import DockerEngine, Registry, build_busybox_image
from testenv.moto_server import MotoServer
from testenv.postgres import PostgresServer

pytestmark = pytest.mark.integration

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _get(url: str, timeout: float = 15.0) -> bytes:
    """GET a loopback URL, retrying until the server inside a container is up."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with _NO_PROXY.open(url, timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def test_docker_engine_answers(docker_engine: DockerEngine) -> None:
    assert docker_engine.client().ping()
    assert docker_engine.client().version()["ApiVersion"]


def test_busybox_image_is_pulled_from_registry(
    docker_engine: DockerEngine, busybox_image: str
) -> None:
    client = docker_engine.client()
    with contextlib.suppress(docker.errors.ImageNotFound):  # another test may have pulled it
        client.images.remove(busybox_image)
    with pytest.raises(docker.errors.ImageNotFound):
        client.images.get(busybox_image)
    image = client.images.pull(busybox_image)
    assert busybox_image in image.tags
    assert (
        client.containers.run(busybox_image, ["echo", "ok"], network_mode="host", remove=True)
        == b"ok\n"
    )


def test_busybox_httpd_over_loopback(docker_engine: DockerEngine, busybox_image: str) -> None:
    port = free_port()
    script = (
        "mkdir -p /tmp/www && echo hello-testenv > /tmp/www/index.html"
        f" && exec httpd -f -p 127.0.0.1:{port} -h /tmp/www"
    )
    container = docker_engine.run(busybox_image, ["sh", "-c", script], detach=True)
    try:
        assert _get(f"http://127.0.0.1:{port}/index.html") == b"hello-testenv\n"
    finally:
        container.remove(force=True)


def test_auth_registry_checks_credentials(
    docker_engine: DockerEngine, docker_registry_auth: Registry
) -> None:
    assert docker_registry_auth.auth is not None
    user, password = docker_registry_auth.auth
    assert http_status(f"{docker_registry_auth.url}/v2/") == 401

    client = docker.DockerClient(base_url=docker_engine.base_url)
    try:
        with pytest.raises(docker.errors.APIError):
            client.login(user, "wrong-password", registry=docker_registry_auth.address, reauth=True)
        assert client.login(user, password, registry=docker_registry_auth.address, reauth=True)
    finally:
        client.close()

    ref = build_busybox_image(docker_engine, docker_registry_auth, repository="testenv/private")
    with pytest.raises(docker.errors.APIError):  # anonymous pull is refused
        docker_engine.client().images.pull(ref)
    image = docker_engine.client().images.pull(ref, auth_config=docker_registry_auth.auth_config)
    assert ref in image.tags


def test_moto_server_answers_boto3(moto_server: MotoServer) -> None:
    ec2 = boto3.client(
        "ec2",
        endpoint_url=moto_server.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    regions = {r["RegionName"] for r in ec2.describe_regions()["Regions"]}
    assert "us-east-1" in regions


def test_aws_env_points_boto3_at_moto(aws_env: MotoServer) -> None:
    sts = boto3.client("sts")
    assert sts.meta.endpoint_url == aws_env.endpoint_url
    assert boto3.client("ec2").describe_regions()["Regions"]


def test_postgres_takes_its_password_over_tcp_and_runs_unprivileged(postgres_server: PostgresServer,
                                                                    postgres_url: str) -> None:
    import os

    import psycopg

    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT current_database()").fetchone()[0] == postgres_url.rsplit("/", 1)[1]
        assert db.execute("SHOW max_connections").fetchone()[0] == "300"
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(postgres_url.replace(postgres_server.password, "wrong"), connect_timeout=5)
    with open(f"/proc/{postgres_server.pid}/status") as status:
        uid = next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
    assert uid != 0 and (uid == os.getuid() or os.getuid() == 0)
