"""Day 2 on a real dockerd, through the real CLI and the installed plugin distribution.

``drift`` after out-of-band changes made with the Docker SDK (a container given another
memory limit and stopped, one removed and run again from another image, one removed,
the image's reference deleted);
``plan -d`` and ``update`` changing a container's restart policy and limits in place (the
same container) and replacing containers whose environment or image changed (new
containers, the old ones gone); nothing leaks.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest
from docker_helpers import BLUEPRINTS
from testenv.cli import cli, runtime

from plugins_docker import labels
from plugins_docker.testing import list_resources

pytestmark = pytest.mark.integration

BASE, OTHER = "orchestrator-day2/base:1", "orchestrator-day2/other:1"  # local tags of busybox: no pulls


@pytest.fixture
def base(client: docker.DockerClient, busybox_local: str) -> Iterator[str]:
    """The image the blueprint runs, and OTHER: two local references (a test may remove them)."""
    image = client.images.get(busybox_local)
    for ref in (BASE, OTHER):
        image.tag(*ref.split(":"))
    yield BASE
    for ref in (BASE, OTHER):
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.remove(ref)


@pytest.fixture
def installed(engine_url: str, base: str, deployment_id: str, tmp_path: Path) -> Iterator[dict[str, dict[str, Any]]]:
    """``day2.yaml`` installed as ``deployment_id`` in ``tmp_path``; its runtime properties."""
    (tmp_path / "bp.yaml").write_text((BLUEPRINTS / "day2.yaml").read_text())
    inputs = ["-i", f"docker_url={engine_url}", "-i", f"repository={base}"]
    (tmp_path / "inputs").write_text("\n".join(inputs))
    cli("install", "bp.yaml", "-d", deployment_id, *inputs, cwd=tmp_path)
    yield runtime(tmp_path, deployment_id)
    cli("uninstall", "-d", deployment_id, cwd=tmp_path)
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}


def inputs(cwd: Path) -> list[str]:
    return (cwd / "inputs").read_text().split("\n")


def drift(cwd: Path, deployment: str) -> tuple[int, dict[str, Any]]:
    result = cli("drift", "-d", deployment, "--json", "--exit-code", cwd=cwd, check=False)
    assert result.returncode in (0, 3), result.stdout + result.stderr
    return result.returncode, json.loads(result.stdout)


def test_drift_after_out_of_band_changes(installed, client, engine_url, base, deployment_id, tmp_path):
    rt = installed
    code, report = drift(tmp_path, deployment_id)
    assert (code, report["summary"]) == (0, {"in sync": 4, "drifted": 0, "gone": 0, "failed": 0})

    web = client.containers.get(rt["web_0"]["container_id"])
    web.update(mem_limit="96m", memswap_limit="192m")
    web.kill()
    worker = client.containers.get(rt["worker_0"]["container_id"])
    worker.remove(force=True)  # and run again from another image, with its name and labels
    again = client.containers.run(OTHER, ["sleep", "3600"], name=worker.name, detach=True, network_mode="host",
                                  labels=labels.owner_labels(deployment_id, "worker_0"))
    client.containers.get(rt["spare_0"]["container_id"]).remove(force=True)
    client.images.remove(base)  # the reference goes; the image stays (busybox, OTHER)

    code, report = drift(tmp_path, deployment_id)
    assert code == 3
    assert report["summary"] == {"in sync": 0, "drifted": 2, "gone": 2, "failed": 0}
    engine = f"{engine_url} (from the node's docker_host property)"
    assert {i["instance"]: (i["status"], i.get("differences")) for i in report["instances"]} == {
        "busybox_0": ("gone", {"gone": f"image {base} is no longer on {engine}"}),
        "web_0": ("drifted", {"state": {"recorded": "running", "actual": "exited"},
                              "resources.memory": {"recorded": "64m", "actual": "96m"}}),
        "worker_0": ("drifted", {"container_id": {"recorded": worker.id[:12], "actual": again.id[:12]},
                                 "image": {"recorded": base, "actual": OTHER}}),
        "spare_0": ("gone", {"gone": f"container {rt['spare_0']['name']} is no longer on {engine}"}),
    }


def plan(cwd: Path, deployment: str) -> dict[str, Any]:
    return json.loads(cli("plan", "bp.yaml", "-d", deployment, "--json", *inputs(cwd), cwd=cwd).stdout)


def test_update_in_place_then_replacements(installed, client, deployment_id, tmp_path):
    rt = installed
    web_id, worker_id = rt["web_0"]["container_id"], rt["worker_0"]["container_id"]
    text = (BLUEPRINTS / "day2.yaml").read_text()
    in_place = (text.replace('restart_policy: "no"', "restart_policy: on-failure:3")
                .replace("resources: {memory: 64m}", "resources: {memory: 128m, cpus: 0.5}"))
    (tmp_path / "bp.yaml").write_text(in_place)
    changes = {c["instance"]: c for c in plan(tmp_path, deployment_id)["changes"]}
    assert {i: c["action"] for i, c in changes.items()} == {"web_0": "update"}
    assert changes["web_0"]["properties"] == [
        {"path": "resources.cpus", "old": None, "new": 0.5, "added": True},
        {"path": "resources.memory", "old": "64m", "new": "128m"},
        {"path": "restart_policy", "old": "no", "new": "on-failure:3"}]

    cli("update", "bp.yaml", "-d", deployment_id, "-y", *inputs(tmp_path), cwd=tmp_path)
    web = client.containers.get(web_id)  # the same container
    host = web.attrs["HostConfig"]
    assert (web.status, host["RestartPolicy"], host["Memory"], host["CpuQuota"], host["CpuPeriod"]) == (
        "running", {"Name": "on-failure", "MaximumRetryCount": 3}, 128 * 2**20, 50_000, 100_000)

    replacing = (in_place.replace("environment: {GREETING: hello}", "environment: {GREETING: bonjour}")
                 .replace("      image: {get_input: repository}\n", f"      image: {OTHER}\n"))
    (tmp_path / "bp.yaml").write_text(replacing)
    changes = {c["instance"]: c for c in plan(tmp_path, deployment_id)["changes"]}
    assert {i: (c["action"], c["reason"]) for i, c in changes.items()} == {
        "web_0": ("replace", "property environment cannot change in place"),
        "worker_0": ("replace", "property image cannot change in place")}

    cli("update", "bp.yaml", "-d", deployment_id, "-y", *inputs(tmp_path), cwd=tmp_path)
    after = runtime(tmp_path, deployment_id)
    for old in (web_id, worker_id):
        with pytest.raises(docker.errors.NotFound):
            client.containers.get(old)
    web, worker = (client.containers.get(after[i]["container_id"]) for i in ("web_0", "worker_0"))
    assert web.id != web_id and worker.id != worker_id
    assert "GREETING=bonjour" in web.attrs["Config"]["Env"] and web.attrs["HostConfig"]["Memory"] == 128 * 2**20
    assert (worker.attrs["Config"]["Image"], worker.status) == (OTHER, "running")

    assert plan(tmp_path, deployment_id)["changes"] == []
    assert drift(tmp_path, deployment_id)[0] == 0
