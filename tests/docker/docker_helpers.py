"""Shared helpers of the Docker plugin tests (a module of its own so test files can import it)."""

from __future__ import annotations

import contextlib
import time
import urllib.request
from pathlib import Path
from typing import Any

import docker

from orchestrator.engine.runner import Options
from plugins_docker import labels

BLUEPRINTS = Path(__file__).parent / "blueprints"
HARNESS_DEPLOYMENT = "test"  # orchestrator.testing's single-hook calls use this id
FAST = Options(concurrency=10, retries=3, retry_interval=0.05, max_backoff=0.2)


def labelled(client: docker.DockerClient, deployment: str, instance: str | None = None) -> list[dict[str, Any]]:
    """Raw summaries (``Id``, ``Names``, ``Labels``, ``State``) of a deployment's containers.

    Not ``containers.list()``: it inspects each container and fails when one is created
    or removed in between.
    """
    return list(client.api.containers(all=True, filters=labels.label_filters(deployment, instance)))


def remove_deployment(client: docker.DockerClient, deployment: str) -> None:
    """Force-remove a deployment's containers and pulled-image marker tags (test cleanup)."""
    for summary in labelled(client, deployment):
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(summary["Id"], force=True)
    repository = labels.pulled_repository(deployment)
    for image in client.api.images(name=repository):
        for tag in image.get("RepoTags") or []:
            if tag.startswith(repository + ":"):
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(tag)


def make_absent(client: docker.DockerClient, ref: str) -> None:
    """Make sure *ref* is not on the engine, so the next pull is a real one."""
    with contextlib.suppress(docker.errors.ImageNotFound):
        client.images.remove(ref, force=True)


def http_get(url: str, timeout: float = 10.0) -> bytes:
    """GET a loopback URL without proxies, retrying while the server comes up."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + timeout
    while True:
        try:
            with opener.open(url, timeout=2) as resp:
                return bytes(resp.read())
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
