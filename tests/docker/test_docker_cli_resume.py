"""kill -9 the real CLI in the middle of an install, run it again: nothing is made twice.

The plugins are found through their installed entry points (``ORCHESTRATOR_PLUGINS``
unset), exactly as a user runs them.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_helpers import BLUEPRINTS, labelled, make_absent

from plugins_docker import labels
from plugins_docker.testing import list_resources

pytestmark = pytest.mark.integration

WORKERS = 3
KILL_DEADLINE = 60.0


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("ORCHESTRATOR_PLUGINS", "ORCHESTRATOR_DISABLE_PLUGINS")}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _cli(*args: str, state: Path) -> list[str]:
    return [sys.executable, "-m", "orchestrator", *args, "--state", str(state)]


def _kill_when(proc: subprocess.Popen[str], marker: str | None, client: docker.DockerClient,
               deployment: str) -> str:
    """SIGKILL *proc* once stdout shows *marker* (or, without one, once a container exists)."""
    seen: list[str] = []
    watchdog = threading.Timer(KILL_DEADLINE, proc.kill)
    watchdog.start()
    try:
        if marker is not None:
            assert proc.stdout is not None
            for line in proc.stdout:
                seen.append(line)
                if marker in line:
                    break
        else:
            while proc.poll() is None and not labelled(client, deployment):
                time.sleep(0.005)
        proc.kill()
        proc.wait()
    finally:
        watchdog.cancel()
    return "".join(seen)


@pytest.mark.parametrize("marker", [
    "busybox_0.create [docker_image] create started",  # during the pull
    "worker_0.create [docker_container] create started",  # while the first container is made
    None,  # right after the engine made the first container
], ids=["pulling", "creating", "container-exists"])
def test_killed_install_resumes_without_duplicates(marker: str | None, tmp_path: Path, engine_url: str,
                                                   client: docker.DockerClient, busybox_image: str,
                                                   deployment_id: str) -> None:
    make_absent(client, busybox_image)
    state = tmp_path / "state.db"
    install = _cli("install", str(BLUEPRINTS / "workers.yaml"), "-d", deployment_id, "--concurrency", "1",
                   "--retry-interval", "0.1", "-i", f"docker_url={engine_url}",
                   "-i", f"repository={busybox_image}", "-i", f"count={WORKERS}", state=state)

    proc = subprocess.Popen(install, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    output = _kill_when(proc, marker, client, deployment_id)
    assert proc.returncode == -9, output
    assert "install succeeded" not in output
    before = labelled(client, deployment_id)
    assert len(before) < WORKERS, "the kill came too late to test anything"

    rerun = subprocess.run(install, capture_output=True, text=True, env=_env(), timeout=120)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    containers = labelled(client, deployment_id)
    per_instance = collections.Counter(c["Labels"][labels.INSTANCE_LABEL] for c in containers)
    assert per_instance == {f"worker_{i}": 1 for i in range(WORKERS)}
    assert {c["State"] for c in containers} == {"running"}
    _assert_resumed_ids_kept(before, containers)

    down = subprocess.run(_cli("uninstall", "-d", deployment_id, state=state), capture_output=True, text=True,
                          env=_env(), timeout=120)
    assert down.returncode == 0, down.stdout + down.stderr
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}
    with pytest.raises(docker.errors.ImageNotFound):  # pulled by this deployment, even across the kill
        client.images.get(busybox_image)


def _assert_resumed_ids_kept(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> None:
    """A container that existed at the kill is the one that runs now (adopted, not replaced)."""
    now = {c["Labels"][labels.INSTANCE_LABEL]: c["Id"] for c in after}
    for container in before:
        assert now[container["Labels"][labels.INSTANCE_LABEL]] == container["Id"]
