"""``examples/aws-docker/demo.py`` (``make demo``) end to end, as a user runs it.

The demo starts a moto server, a registry and (unless one answers) a dockerd, runs the
real CLI, and must stop exactly what it started. Checked here from outside: its exit
status, what it printed, and that afterwards none of its processes, containers or AWS
resources is left. Once with the environment as it is (the demo reuses an engine named
by ``DOCKER_HOST`` or the default socket, else starts its own) and once with the session's
engine passed in ``DOCKER_HOST`` (which must be reused and left running).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from testenv._proc import pid_cmdline, pid_matches, pids_mentioning
from testenv.docker_engine import DockerEngine, ping_docker

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "aws-docker"
DEMO = EXAMPLE / "demo.py"
GREETING = "Hello from the orchestrator demo!"
PROCESS_NAMES = {"moto": "moto.server", "registry": "docker-registry", "dockerd": "dockerd"}


def run_demo(tmp_path: Path, env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    deployment = f"demo-test-{uuid.uuid4().hex[:8]}"
    report = tmp_path / "report.json"
    argv = [sys.executable, str(DEMO), "--dir", str(tmp_path / "demo"), "--deployment", deployment,
            "--report", str(report)]
    result = subprocess.run(argv, env=env, cwd=ROOT, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    if result.returncode != 0 and "could not provide an engine" in output and not os.environ.get("CI"):
        pytest.skip(f"no Docker engine for the demo: {output[-600:]}")
    assert result.returncode == 0, f"demo exited {result.returncode}:\n{output[-6000:]}"
    data = json.loads(report.read_text())
    assert data["deployment"] == deployment
    return result, data


def check_printed(result: subprocess.CompletedProcess[str], data: dict[str, Any]) -> None:
    out = result.stdout
    for step in ("validate", "plan", "install", "outputs", "status", "uninstall"):
        assert f"$ orchestrator {step} " in out, step
    outputs = data["outputs"]
    assert outputs["instance_id"].startswith("i-")
    assert len(outputs["container_id"]) == 64
    assert outputs["url"].startswith("http://127.0.0.1:")
    for name in ("elastic_ip", "instance_id", "container_id", "url"):
        assert f"{name}: {outputs[name]}\n" in out, f"output {name} not printed"
    page = (f"<h1>{GREETING}</h1>\n"
            f"<p>instance {outputs['instance_id']}, elastic IP {outputs['elastic_ip']}</p>\n")
    assert data["http_body"] == page
    assert page in out
    assert f"install of deployment '{data['deployment']}' succeeded" in out
    assert f"uninstall of deployment '{data['deployment']}' succeeded" in out
    assert "ok the demo succeeded" in out
    assert data["problems"] == []


def check_nothing_left(data: dict[str, Any], reused: DockerEngine | None = None) -> None:
    """Nothing of the demo runs, nothing of its deployment is left on a reused engine."""
    started = data["started_pids"]
    assert {"moto", "registry"} <= set(started)
    for what, pid in started.items():
        assert not pid_matches(pid, PROCESS_NAMES[what]), f"{what} (pid {pid}) still runs"
    port = data["aws_endpoint_url"].rsplit(":", 1)[1]
    motos = [pid for pid in _pids() if _is_moto_on(pid, port)]
    assert motos == [], f"moto server on port {port} still runs: {motos}"
    with pytest.raises(OSError):  # the container is gone, so is its httpd
        urllib.request.build_opener(urllib.request.ProxyHandler({})).open(data["outputs"]["url"], timeout=3)
    if data["engine_started_by_demo"]:
        assert "dockerd" in started
        assert not ping_docker(data["docker_host"])
        run_dir = data["docker_run_dir"]
        assert run_dir and pids_mentioning(f"{run_dir}/", ("dockerd", "containerd", "runc")) == []
    else:
        assert "dockerd" not in started
        # the engine the demo found through this process's environment, or the one passed in
        engine = reused or DockerEngine(base_url=data["docker_host"], from_env=data["docker_from_env"])
        try:
            client = engine.client()
            labelled = client.api.containers(
                all=True, filters={"label": [f"orchestrator.deployment={data['deployment']}"]})
            assert labelled == []
            assert client.api.images(name=f"orchestrator-pulled/{data['deployment']}") == []
        finally:
            if reused is None:
                engine.stop()  # closes the client; never stops an engine it did not start


def _pids() -> list[int]:
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]


def _is_moto_on(pid: int, port: str) -> bool:
    argv = pid_cmdline(pid)
    return any("moto.server" in a for a in argv) and port in argv


@pytest.mark.integration
def test_demo_as_make_demo_runs_it(tmp_path: Path) -> None:
    """The environment as it is: an engine that answers is reused, else the demo starts one."""
    result, data = run_demo(tmp_path, dict(os.environ))
    check_printed(result, data)
    check_nothing_left(data)


@pytest.mark.integration
def test_demo_reuses_a_running_engine_and_leaves_it_running(tmp_path: Path,
                                                             docker_engine: DockerEngine) -> None:
    env = dict(os.environ)
    if not docker_engine.from_env:
        env["DOCKER_HOST"] = docker_engine.base_url
        for var in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
            env.pop(var, None)
    result, data = run_demo(tmp_path, env)
    check_printed(result, data)
    assert data["engine_started_by_demo"] is False
    assert data["docker_host"] == env["DOCKER_HOST"]
    assert "reused, left running" in result.stdout
    check_nothing_left(data, reused=docker_engine)
    assert docker_engine.client().ping()


def test_real_aws_inputs_validate() -> None:
    """The README's inputs for real AWS fit the blueprint (no engine, no AWS call)."""
    result = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", str(EXAMPLE / "blueprint.yaml"),
         "-i", str(EXAMPLE / "inputs-real-aws.yaml")],
        capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert result.returncode == 0, result.stderr
