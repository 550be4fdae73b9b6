"""pytest plugin: session-scoped real engines (load with ``pytest_plugins``).

Everything started here is stopped at session end. When an engine cannot be
provided the fixture skips locally, but fails under CI (``CI`` set), so a
broken CI machine never turns integration tests into silent skips.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest
from docker.errors import DockerException

from testenv._proc import TestEnvError
from testenv.docker_engine import (
    DockerEngine,
    Registry,
    build_busybox_image,
    ensure_docker,
    ensure_registry,
)
from testenv.moto_server import MotoServer, start_moto
from testenv.postgres import PostgresServer, start_postgres
from testenv.redis_server import RedisServer, start_redis

T = TypeVar("T")

REGISTRY_USER = "testenv"
REGISTRY_PASSWORD = "testenv-password"


def _provide(what: str, start: Callable[[], T]) -> T:
    """Run *start*; on failure skip (locally) or fail (CI) with the reason."""
    try:
        return start()
    except (TestEnvError, DockerException, OSError, subprocess.CalledProcessError) as exc:
        message = f"{what} unavailable: {exc}"
        if os.environ.get("CI"):
            pytest.fail(message, pytrace=False)
        pytest.skip(message)


@pytest.fixture(scope="session")
def docker_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerEngine]:
    """A Docker engine: an existing one if it answers, else our own dockerd."""
    engine = _provide(
        "docker engine",
        lambda: ensure_docker(tmp_path_factory.mktemp("docker"), die_with_parent=True),
    )
    yield engine
    engine.stop()


@pytest.fixture(scope="session")
def docker_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry on 127.0.0.1 without auth."""
    reg = _provide(
        "docker registry",
        lambda: ensure_registry(tmp_path_factory.mktemp("registry"), die_with_parent=True),
    )
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def docker_registry_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry with htpasswd auth; credentials in ``.auth`` (user, password)."""
    reg = _provide(
        "docker registry (auth)",
        lambda: ensure_registry(
            tmp_path_factory.mktemp("registry-auth"),
            auth=(REGISTRY_USER, REGISTRY_PASSWORD),
            die_with_parent=True,
        ),
    )
    yield reg
    reg.stop()


@pytest.fixture(scope="session")
def busybox_image(docker_engine: DockerEngine, docker_registry: Registry) -> str:
    """Reference of a busybox image in ``docker_registry`` (not present locally)."""
    return _provide("busybox image", lambda: build_busybox_image(docker_engine, docker_registry))


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoServer]:
    """An in-process threaded moto server; pass its ``endpoint_url`` explicitly."""
    server = _provide("moto server", lambda: start_moto(in_process=True))
    yield server
    server.stop()


@pytest.fixture
def aws_env(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """Point boto3 at ``moto_server`` through the environment, for this test only."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    return moto_server


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A real Redis on 127.0.0.1 (the Celery broker), for the whole session."""
    server = _provide("redis-server", lambda: start_redis(tmp_path_factory.mktemp("redis")))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """Debian's PostgreSQL on 127.0.0.1 with a private data directory, for the whole session."""
    server = _provide("PostgreSQL", lambda: start_postgres(die_with_parent=True))
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database for this test (dropped after it): its URL, password included."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    url = _provide("PostgreSQL database", lambda: postgres_server.create_database(name))
    yield url
    postgres_server.drop_database(name)
