"""The AWS plugin's custom operations on the moto server, through the real CLI: ``reboot``
(with and without waiting; refused for a terminated instance) and ``console_output``, and
inputs refused before anything runs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_helpers import AMI
from testenv.cli import cli, runtime

from plugins_aws.testing import leaked

pytestmark = pytest.mark.integration

BLUEPRINT = f"""
node_templates:
  vm:
    type: aws.ec2.Instance
    properties: {{image_id: {AMI}, instance_type: t3.nano, poll_interval: 0.01, wait_timeout: 5.0}}
"""


@pytest.fixture
def vm(aws_env: Any, deployment: str, tmp_path: Path) -> Iterator[str]:
    """One instance installed as ``deployment``; its id."""
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    cli("install", "bp.yaml", "-d", deployment, cwd=tmp_path)
    yield runtime(tmp_path, deployment)["vm_0"]["instance_id"]
    cli("uninstall", "-d", deployment, cwd=tmp_path)
    assert leaked(deployment) == {}


def execute(cwd: Path, deployment: str, *args: str) -> Any:
    done = cli("execute", "-d", deployment, *args, "--json", cwd=cwd)
    [result] = json.loads(done.stdout)["results"]
    assert result["status"] == "succeeded", result
    return result["result"]


def events(cwd: Path, deployment: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in cli("events", "-d", deployment, "--json", cwd=cwd).stdout.splitlines()]


def test_reboot_requests_once_and_may_wait_until_running(vm, deployment, tmp_path):
    assert execute(tmp_path, deployment, "reboot") == {"instance_id": vm, "reboot": "requested"}
    waited = execute(tmp_path, deployment, "reboot", "-p", "wait=true")
    assert {k: v for k, v in waited.items() if k != "seconds"} == {
        "instance_id": vm, "reboot": "done", "state": "running", "instance_status": "ok", "system_status": "ok"}
    logs = [e["message"] for e in events(tmp_path, deployment) if e["operation"] == "reboot" and e["type"] == "log"]
    assert logs[:2] == [f"instance {vm}: reboot requested"] * 2
    status = json.loads(cli("status", "-d", deployment, "--json", cwd=tmp_path).stdout)
    assert [i["state"] for i in status["instances"]] == ["started"]


def test_a_reboot_waiting_through_retries_reboots_once(vm, deployment, tmp_path, monkeypatch):
    """The status checks say "impaired" twice: the wait is retried, and RebootInstances not."""
    (tmp_path / "impaired.py").write_text('''
import botocore.client
real = botocore.client.BaseClient._make_api_call
seen = {"DescribeInstanceStatus": 0}
def fake(self, name, params):
    answer = real(self, name, params)
    if name == "DescribeInstanceStatus" and seen[name] < 2:
        seen[name] += 1
        for status in answer["InstanceStatuses"]:
            status["InstanceStatus"] = {"Status": "impaired"}
    return answer
botocore.client.BaseClient._make_api_call = fake
''')
    (tmp_path / "sitecustomize.py").write_text("import impaired\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    done = execute(tmp_path, deployment, "reboot", "-p", "wait=true", "--retry-interval", "0.01")
    assert done["reboot"] == "done"
    ran = [e for e in events(tmp_path, deployment) if e["operation"] == "reboot"]
    assert sum(e["type"] == "operation_retrying" for e in ran) == 2
    assert [e["message"] for e in ran if e["message"].endswith("reboot requested")] == [
        f"instance {vm}: reboot requested"]  # once, though it ran three times


def test_console_output_is_text(vm, deployment, tmp_path):
    text = execute(tmp_path, deployment, "console_output")
    assert text.startswith("Linux version")  # moto's sample; AWS sends base64, botocore decodes it
    assert execute(tmp_path, deployment, "console_output", "-p", "latest=true") == text
    shown = cli("execute", "-d", deployment, "console_output", cwd=tmp_path).stdout
    assert shown.startswith("vm_0:\n  Linux version")


def test_a_terminated_instance_is_not_rebooted(vm, ec2, deployment, tmp_path):
    ec2.terminate_instances(InstanceIds=[vm])
    done = cli("execute", "-d", deployment, "reboot", cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert f"vm_0: FAILED: instance {vm} is terminated, not running: nothing to reboot (orchestrator heal " \
           "replaces it)" in done.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["reboot", "-p", "wait=soon"], "<-p>:1:6: input 'wait' of operation 'reboot': expected boolean, got string 'soon'"),
    (["reboot", "-p", "force=true"], "<-p>:1:1: operation 'reboot' has no input 'force' (its inputs: wait)"),
    (["console_output", "-p", "latest=1"],
     "<-p>:1:8: input 'latest' of operation 'console_output': expected boolean, got integer 1"),
    (["restart"], "has an operation 'restart' (its operations: console_output, reboot;"),
])
def test_bad_inputs_are_refused_before_anything_runs(vm, deployment, tmp_path, args, expected):
    refused = cli("execute", "-d", deployment, *args, cwd=tmp_path, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert expected in refused.stderr, refused.stderr
    assert not [e for e in events(tmp_path, deployment) if e["operation"] in ("reboot", "console_output")]
