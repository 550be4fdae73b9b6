"""Heal and scale on two real engines, through the real CLI: moto plays EC2, the test dockerd
plays every instance's engine (``blueprints/day2_on_aws.yaml``).

``heal`` after the VM is terminated behind our back: a new VM, the same elastic IP
associated with it, the container it holds created again on it, and nothing else touched
(the plugins' records and the real resources of every other instance are as they were).
``scale`` out and in of hosts with their contained containers. Each killed with ``kill -9``
at random points and run again: every resource exists exactly once, nothing leaks.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import docker
import pytest
from docker_helpers import BLUEPRINTS
from testenv.cli import cli, runtime

from plugins_docker import labels
from plugins_docker.testing import list_resources

pytestmark = pytest.mark.integration

aws_testing = pytest.importorskip("plugins_aws.testing")

SEEDS = [int(s) for s in os.environ.get("ORCH_TEST_SEEDS", "1,2").split(",")]
OTHERS_THAN_WEB = ("firewall_0", "public_ip_0", "worker_vm_0", "worker_0", "cache_0")


@pytest.fixture
def ec2(aws_env: Any) -> Any:
    return boto3.client("ec2", region_name="us-east-1")


@pytest.fixture
def deployed(aws_env: Any, engine_url: str, busybox_local: str, deployment_id: str,
             tmp_path: Path) -> Iterator[str]:
    """``day2_on_aws.yaml`` installed as ``deployment_id`` in ``tmp_path``; uninstalled after,
    and then nothing of it is left on either engine."""
    (tmp_path / "bp.yaml").write_text((BLUEPRINTS / "day2_on_aws.yaml").read_text())
    cli("install", "bp.yaml", "-d", deployment_id, "-i", f"docker_url={engine_url}", "-i", f"image={busybox_local}",
        cwd=tmp_path)
    yield deployment_id
    cli("uninstall", "-d", deployment_id, cwd=tmp_path)
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}
    assert aws_testing.leaked(deployment_id) == {}


def terminate_behind_our_back(ec2: Any, rt: dict[str, dict[str, Any]], host: str) -> str:
    """Terminate an instance with boto3, and let its elastic IP go as AWS does (moto keeps it)."""
    instance_id = rt[host]["instance_id"]
    ec2.terminate_instances(InstanceIds=[instance_id])
    for address in ec2.describe_addresses()["Addresses"]:
        if address.get("InstanceId") == instance_id:
            ec2.disassociate_address(AssociationId=address["AssociationId"])
    return instance_id


def live_instances(ec2: Any, deployment: str) -> dict[str, list[str]]:
    """EC2 instances not terminated, by the orchestrator instance their tag names."""
    found: dict[str, list[str]] = {}
    answer = ec2.describe_instances(Filters=[
        {"Name": f"tag:{labels.DEPLOYMENT_LABEL}", "Values": [deployment]},
        {"Name": "instance-state-name", "Values": ["pending", "running", "stopping", "stopped"]}])
    for reservation in answer["Reservations"]:
        for instance in reservation["Instances"]:
            tags = {t["Key"]: t["Value"] for t in instance.get("Tags") or []}
            found.setdefault(tags[labels.INSTANCE_LABEL], []).append(instance["InstanceId"])
    return found


def containers(client: docker.DockerClient, deployment: str) -> dict[str, list[tuple[str, str, str]]]:
    """Containers by the orchestrator instance their label names: (id, state, started at)."""
    found: dict[str, list[tuple[str, str, str]]] = {}
    for summary in client.api.containers(all=True, filters=labels.label_filters(deployment)):
        started = client.api.inspect_container(summary["Id"])["State"]["StartedAt"]
        found.setdefault(summary["Labels"][labels.INSTANCE_LABEL], []).append(
            (summary["Id"], summary["State"], started))
    return found


def touched(cwd: Path, deployment: str, after: int) -> set[str]:
    """Instances an operation other than check_drift ran for, in events after id ``after``."""
    with contextlib.closing(sqlite3.connect(cwd / "state.db")) as db:
        rows = db.execute("SELECT instance FROM events WHERE deployment = ? AND id > ? AND type = "
                          "'operation_started' AND operation != 'check_drift'", (deployment, after))
        return {iid for (iid,) in rows}


def last_event(cwd: Path, deployment: str) -> int:
    with contextlib.closing(sqlite3.connect(cwd / "state.db")) as db:
        return int(db.execute("SELECT COALESCE(MAX(id), 0) FROM events WHERE deployment = ?",
                              (deployment,)).fetchone()[0])


def outputs(cwd: Path, deployment: str) -> dict[str, Any]:
    return json.loads(cli("outputs", "-d", deployment, "--json", cwd=cwd).stdout)


def test_heal_after_the_vm_is_terminated_behind_our_back(deployed, ec2, client, tmp_path):
    before, real_before = runtime(tmp_path, deployed), containers(client, deployed)
    address = outputs(tmp_path, deployed)["address"]
    old_vm = terminate_behind_our_back(ec2, before, "web_0")

    drift = cli("drift", "-d", deployed, "--json", "--exit-code", cwd=tmp_path, check=False)
    assert drift.returncode == 3, drift.stdout + drift.stderr
    report = json.loads(drift.stdout)
    assert report["summary"] == {"in sync": 6, "drifted": 0, "gone": 1, "failed": 0}
    dry = json.loads(cli("heal", "-d", deployed, "--dry-run", "--json", cwd=tmp_path).stdout)
    assert {c["instance"]: c["action"] for c in dry["changes"]} == {"web_0": "replace", "app_0": "replace"}

    mark = last_event(tmp_path, deployed)
    cli("heal", "-d", deployed, "--yes", cwd=tmp_path)
    assert touched(tmp_path, deployed, mark) == {"web_0", "app_0"}
    after, real_after = runtime(tmp_path, deployed), containers(client, deployed)
    new_vm = after["web_0"]["instance_id"]
    assert new_vm != old_vm and live_instances(ec2, deployed)["web_0"] == [new_vm]
    # the same elastic IP, now on the new VM
    [eip] = ec2.describe_addresses(AllocationIds=[after["public_ip_0"]["aws_resource_id"]])["Addresses"]
    assert (eip["PublicIp"], eip["InstanceId"]) == (address, new_vm)
    assert after["public_ip_0"]["instance_id"] == new_vm
    assert after["web_0"]["public_ip_address"] == address
    # the container it holds: a new one, running, told the new VM's id
    [(app_id, state, _)] = real_after["app_0"]
    assert app_id != real_before["app_0"][0][0] and state == "running"
    assert app_id == after["app_0"]["container_id"]
    assert f"app on {new_vm}" in client.containers.get(app_id).logs().decode()
    # nothing else: the same records, the same containers (not even restarted)
    for iid in OTHERS_THAN_WEB:
        if iid != "public_ip_0":  # its association follows the VM, as asserted above
            assert after[iid] == before[iid], iid
        if iid in real_before:
            assert real_after[iid] == real_before[iid], iid
    assert after["public_ip_0"]["aws_resource_id"] == before["public_ip_0"]["aws_resource_id"]
    assert json.loads(cli("drift", "-d", deployed, "--json", cwd=tmp_path).stdout)["summary"]["in sync"] == 7


def test_scale_out_and_in_with_the_containers_the_hosts_hold(deployed, ec2, client, tmp_path):
    before, real_before = runtime(tmp_path, deployed), containers(client, deployed)
    group = before["firewall_0"]["aws_resource_id"]

    mark = last_event(tmp_path, deployed)
    cli("scale", "-d", deployed, "worker_vm=+2", cwd=tmp_path)
    assert touched(tmp_path, deployed, mark) == {"worker_vm_1", "worker_1", "worker_vm_2", "worker_2"}
    rt, real = runtime(tmp_path, deployed), containers(client, deployed)
    hosts = live_instances(ec2, deployed)
    for n in (1, 2):
        [vm] = hosts[f"worker_vm_{n}"]
        assert rt[f"worker_vm_{n}"]["instance_id"] == vm
        assert rt[f"worker_{n}"]["engine"].endswith(f"(from host worker_vm_{n}'s docker_host runtime property)")
        [(container_id, state, _)] = real[f"worker_{n}"]
        assert (container_id, state) == (rt[f"worker_{n}"]["container_id"], "running")
        [reservation] = ec2.describe_instances(InstanceIds=[vm])["Reservations"]
        assert [g["GroupId"] for g in reservation["Instances"][0]["SecurityGroups"]] == [group]  # its relationship
    data = outputs(tmp_path, deployed)
    assert data["workers"] == [rt[f"worker_vm_{n}"]["instance_id"] for n in range(3)]
    assert data["worker_containers"] == [rt[f"worker_{n}"]["container_id"] for n in range(3)]
    for iid in ("web_0", "app_0", *OTHERS_THAN_WEB):
        assert rt[iid] == before[iid], iid
        if iid in real_before:
            assert real[iid] == real_before[iid], iid

    mark = last_event(tmp_path, deployed)
    cli("scale", "-d", deployed, "--remove", "worker_vm_0", cwd=tmp_path)
    assert touched(tmp_path, deployed, mark) == {"worker_vm_0", "worker_0"}
    cli("scale", "-d", deployed, "worker_vm=-1", cwd=tmp_path)  # the newest goes
    rt, real = runtime(tmp_path, deployed), containers(client, deployed)
    assert sorted(live_instances(ec2, deployed)) == ["web_0", "worker_vm_1"]
    assert sorted(real) == ["app_0", "cache_0", "worker_1"]
    assert outputs(tmp_path, deployed)["workers"] == rt["worker_vm_1"]["instance_id"]
    status = json.loads(cli("status", "-d", deployed, "--json", cwd=tmp_path).stdout)
    assert sorted(i["instance"] for i in status["instances"]) == [
        "app_0", "cache_0", "firewall_0", "public_ip_0", "web_0", "worker_1", "worker_vm_1"]
    for iid in ("web_0", "app_0", "firewall_0", "public_ip_0", "cache_0"):
        assert rt[iid] == before[iid], iid


def executions(cwd: Path, deployment: str) -> list[tuple[int, str, str]]:
    """``(id, workflow, status)`` of the deployment's executions."""
    with contextlib.closing(sqlite3.connect(cwd / "state.db")) as db:
        return list(db.execute("SELECT id, workflow, status FROM executions WHERE deployment = ? ORDER BY id",
                               (deployment,)))


def kill_at_random_point(command: list[str], cwd: Path, deployment: str, rng: random.Random) -> bool:
    """Run a command and kill -9 it once it has recorded a few events; True when that left it
    unfinished (a kill can also land between its recorded success and its exit)."""
    mark, seen = last_event(cwd, deployment), len(executions(cwd, deployment))
    proc = cli(*command, cwd=cwd, background=True)
    wanted = mark + rng.randint(1, 14)
    try:
        while proc.poll() is None and last_event(cwd, deployment) < wanted:
            time.sleep(0.005)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    ran = executions(cwd, deployment)[seen:]  # heal runs a drift execution first
    return (command[0], "succeeded") not in [(workflow, status) for _, workflow, status in ran]


@pytest.mark.parametrize("seed", SEEDS)
def test_heal_and_scale_killed_then_rerun_make_each_resource_once(deployed, ec2, client, tmp_path, seed):
    rng = random.Random(seed)
    before = runtime(tmp_path, deployed)
    terminate_behind_our_back(ec2, before, "web_0")
    if kill_at_random_point(["heal", "-d", deployed, "--yes"], tmp_path, deployed, rng):
        cli("heal", "-d", deployed, "--instance", "web_0", "--yes", cwd=tmp_path)  # a heal resumed heals it
    for scale in (["worker_vm=+2"], ["--remove", "worker_vm_0"]):
        if kill_at_random_point(["scale", "-d", deployed, "--yes", *scale], tmp_path, deployed, rng):
            cli("scale", "-d", deployed, "--yes", *scale, cwd=tmp_path)  # resumes toward the count it set

    expected = ["app_0", "cache_0", "web_0", "worker_1", "worker_2", "worker_vm_1", "worker_vm_2"]
    status = json.loads(cli("status", "-d", deployed, "--json", cwd=tmp_path).stdout)
    assert {i["instance"]: i["state"] for i in status["instances"]} == dict.fromkeys(
        [*expected, "firewall_0", "public_ip_0"], "started")
    rt = runtime(tmp_path, deployed)
    hosts = live_instances(ec2, deployed)
    assert hosts == {iid: [rt[iid]["instance_id"]] for iid in ("web_0", "worker_vm_1", "worker_vm_2")}
    real = containers(client, deployed)
    assert {iid: [(c[0], c[1]) for c in found] for iid, found in real.items()} == {
        iid: [(rt[iid]["container_id"], "running")] for iid in ("app_0", "cache_0", "worker_1", "worker_2")}
    [eip] = ec2.describe_addresses(AllocationIds=[rt["public_ip_0"]["aws_resource_id"]])["Addresses"]
    assert eip["InstanceId"] == rt["web_0"]["instance_id"]
    assert len(aws_testing.list_resources(deployed)["addresses"]) == 1
    assert rt["cache_0"] == before["cache_0"] and rt["firewall_0"] == before["firewall_0"]
    drift = cli("drift", "-d", deployed, "--json", "--exit-code", cwd=tmp_path, check=False)
    assert drift.returncode == 0, drift.stdout
