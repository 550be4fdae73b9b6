"""The Docker plugin's custom operations on a real dockerd, through the real CLI:
``exec`` (output and exit code; ``check``), ``logs`` (``tail``, ``timestamps``) and ``restart``
(the same container, started again), and inputs refused before anything runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from testenv.cli import cli, runtime

from plugins_docker.testing import list_resources

pytestmark = pytest.mark.integration

BLUEPRINT = """
inputs:
  docker_url: {type: string}
  image: {type: string}
node_templates:
  app:
    type: docker.Container
    properties:
      image: {get_input: image}
      command: [sh, -c, "for i in 1 2 3 4 5; do echo line $i; done && exec sleep 3600"]
      environment: {GREETING: hello}
      stop_timeout: 0
      startup_grace: 0.2
      docker_host: {url: {get_input: docker_url}}
"""


@pytest.fixture
def app(engine_url: str, busybox_local: str, deployment_id: str, tmp_path: Path) -> Iterator[str]:
    """One container installed as ``deployment_id``; its id."""
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    cli("install", "bp.yaml", "-d", deployment_id, "-i", f"docker_url={engine_url}", "-i", f"image={busybox_local}",
        cwd=tmp_path)
    yield runtime(tmp_path, deployment_id)["app_0"]["container_id"]
    cli("uninstall", "-d", deployment_id, cwd=tmp_path)
    assert list_resources(deployment_id, engine_url) == {"containers": [], "images": []}


def execute(cwd: Path, deployment: str, *args: str) -> Any:
    """``execute ... --json``: the one instance's result."""
    done = cli("execute", "-d", deployment, *args, "--json", cwd=cwd)
    [result] = json.loads(done.stdout)["results"]
    assert result["status"] == "succeeded", result
    return result["result"]


def test_exec_gives_output_and_exit_code(app, deployment_id, tmp_path):
    assert execute(tmp_path, deployment_id, "exec", "-p", "command=echo $GREETING") == {
        "output": "$GREETING\n", "exit_code": 0}  # split like a shell, not run by one
    listed = ["-p", 'command=[sh, -c, "echo $GREETING $EXTRA && pwd && id -u && exit 3"]',
              "-p", "env={EXTRA: more}", "-p", "workdir=/tmp", "-p", "user=65534"]
    assert execute(tmp_path, deployment_id, "exec", *listed) == {"output": "hello more\n/tmp\n65534\n",
                                                                 "exit_code": 3}  # an answer, not a failure
    assert execute(tmp_path, deployment_id, "exec", "-p", "command=false") == {"output": "", "exit_code": 1}

    text = cli("execute", "-d", deployment_id, "exec", "-p", "command=uname -s", cwd=tmp_path)
    assert text.stdout == 'app_0: {"output": "Linux\\n", "exit_code": 0}\n'
    checked = cli("execute", "-d", deployment_id, "exec", "-p", "command=[sh, -c, 'echo no && exit 4']",
                  "-p", "check=true", cwd=tmp_path, check=False)
    assert checked.returncode == 1
    assert "app_0: FAILED: sh -c 'echo no && exit 4' in container" in checked.stderr
    assert "exited with 4: no" in checked.stderr


def test_logs_tail_and_timestamps(app, deployment_id, tmp_path):
    assert execute(tmp_path, deployment_id, "logs", "-p", "tail=2") == "line 4\nline 5\n"
    assert execute(tmp_path, deployment_id, "logs") == "".join(f"line {i}\n" for i in range(1, 6))
    stamped = execute(tmp_path, deployment_id, "logs", "-p", "tail=1", "-p", "timestamps=true")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z line 5\n", stamped), stamped


def test_restart_keeps_the_container_and_starts_it_again(app, client, deployment_id, tmp_path):
    before = client.containers.get(app).attrs["State"]["StartedAt"]
    result = execute(tmp_path, deployment_id, "restart", "-p", "timeout=0")
    container = client.containers.get(app)
    assert (result["container_id"], result["state"]) == (app, "running")
    assert result["started_at"] == container.attrs["State"]["StartedAt"] != before
    assert runtime(tmp_path, deployment_id)["app_0"]["container_id"] == app
    drift = cli("drift", "-d", deployment_id, "--exit-code", cwd=tmp_path, check=False)
    assert drift.returncode == 0, drift.stdout
    assert execute(tmp_path, deployment_id, "logs", "-p", "tail=0").count("line 1\n") == 2  # it ran again


def test_exec_on_a_stopped_container_says_so(app, client, deployment_id, tmp_path):
    client.containers.get(app).kill()
    done = cli("execute", "-d", deployment_id, "exec", "-p", "command=true", cwd=tmp_path, check=False)
    assert done.returncode == 1
    assert "exec needs it running (orchestrator heal brings it back)" in done.stderr


@pytest.mark.parametrize(("args", "expected"), [
    (["exec"], "<-p>:1:1: operation 'exec' needs input 'command' (give -p command=VALUE)"),
    (["exec", "-p", "command=true", "-p", "cwd=/"], "<-p>:2:1: operation 'exec' has no input 'cwd' (its inputs: command, workdir, env, user, check)"),
    (["exec", "-p", "command=true", "-p", "env={A: [1]}"],
     "<-p>:2:5: input 'env.A' of operation 'exec': expected string, got list"),
    (["exec", "-p", "command=true", "-p", "check=maybe"],
     "<-p>:2:7: input 'check' of operation 'exec': expected boolean, got string 'maybe'"),
    (["logs", "-p", "tail=-1"], "<-p>:1:6: input 'tail' of operation 'logs': -1 is not greater than or equal to 0"),
    (["logs", "-p", "tail=ten"], "<-p>:1:6: input 'tail' of operation 'logs': expected integer, got string 'ten'"),
    (["restart", "-p", "timeout=soon"],
     "<-p>:1:9: input 'timeout' of operation 'restart': expected integer, got string 'soon'"),
])
def test_bad_inputs_are_refused_before_anything_runs(app, client, deployment_id, tmp_path, args, expected):
    started = client.containers.get(app).attrs["State"]["StartedAt"]
    refused = cli("execute", "-d", deployment_id, *args, cwd=tmp_path, check=False)
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert expected in refused.stderr, refused.stderr
    assert refused.stdout == ""
    assert client.containers.get(app).attrs["State"]["StartedAt"] == started
    events = cli("events", "-d", deployment_id, "--json", cwd=tmp_path).stdout
    assert '"workflow": "execute"' not in events and '"operation_result"' not in events


def test_operations_lists_them_with_their_inputs(app, deployment_id, tmp_path):
    listed = json.loads(cli("operations", "-d", deployment_id, "--json", cwd=tmp_path).stdout)
    [node] = listed["nodes"]
    assert (node["node"], node["plugin"], node["started"]) == ("app", "docker_container", ["app_0"])
    assert {op["name"]: {name: (i["type"], i["required"], i.get("default")) for name, i in op["inputs"].items()}
            for op in node["operations"]} == {
        "exec": {"command": (None, True, None), "workdir": ("string", False, None), "env": ("dict", False, {}),
                 "user": ("string", False, None), "check": ("boolean", False, False)},
        "logs": {"tail": ("integer", False, 100), "timestamps": ("boolean", False, False)},
        "restart": {"timeout": ("integer", False, None)},
    }
