"""Real Cloudify blueprints (tests/cloudify/corpus; MANIFEST.tsv says where each comes from).

Each one, given the inputs it requires (INPUTS.yaml), validates and plans, or is refused
with only ``FILE:LINE:COL: not supported: ...`` / ``not available offline: ...`` lines and
exit 2: never a traceback, never another kind of message. Two are broken upstream and
Cloudify rejects them too (UPSTREAM_INVALID): they must get exactly that problem.
"""

from __future__ import annotations

import csv
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CORPUS = Path(__file__).parent / "corpus"
INPUTS = yaml.safe_load((CORPUS / "INPUTS.yaml").read_text())
# Files other corpus files import (a plugin's YAML, shared types, includes): not blueprints.
IMPORTED = re.compile(r"(^|/)(includes|types)/|^cloudify-docker-plugin/plugin\.yaml$")
BLUEPRINTS = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml")
                    if p.name != "INPUTS.yaml" and not IMPORTED.search(str(p.relative_to(CORPUS))))
UPSTREAM_INVALID = {
    "blueprint-examples/getting-started/mc-localstack.yaml": "32:5: YAML syntax error",  # a mis-indented line
    "cloudify-aws-plugin/examples/ec2-instance-feature-demo/eip-nic-blueprint.yaml":
        "38:31: node template 'eip': property 'client_config': get_input of undeclared input 'aws_region_name'",
}
RUNS = {  # validate and plan: the ones the integration tests install
    "blueprint-examples/introduction-to-blueprints/ex1-input-output-blueprint.yaml",
    "cloudify-aws-plugin/examples/ec2-keys-feature-demo/blueprint.yaml",
    "cloudify-aws-plugin/examples/ec2-instance-feature-demo/elastic-ip.yaml",
    "cloudify-aws-plugin/examples/security-group-feature-demo/blueprint.yaml",
    "cloudify-docker-plugin/docker_plugin/tests/blueprint/test_pull-blueprint.yaml",
    "cloudify-nodecellar-docker-example/ec2-blueprint.yaml",
    "cloudify-hello-world-example/install-script.yaml",
    "blueprint-examples/aws-example-network/blueprint.yaml",
    "cloudify-aws-plugin/examples/natgateway-feature-demo/blueprint.yaml",
    "cloudify-aws-plugin/examples/ec2-image-feature-demo/blueprint.yaml",
    "cloudify-hello-world-example/aws.yaml",
    "cloudify-aws-plugin/examples/ebs-feature-demo/blueprint.yaml",
}
REFUSAL = re.compile(r"^\S+:\d+:\d+: (not supported|not available offline): \S.*$")


def _run(command: str, name: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    args = []
    if name in INPUTS:
        given = tmp_path / "inputs.yaml"
        given.write_text(yaml.safe_dump(INPUTS[name]))
        args = ["-i", str(given)]
    return subprocess.run([sys.executable, "-m", "orchestrator", command, str(CORPUS / name), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_validates_or_is_refused_clearly(name: str, tmp_path: Path) -> None:
    result = _run("validate", name, tmp_path)
    assert "Traceback" not in result.stderr
    if name in RUNS:
        assert result.returncode == 0, result.stderr
        plan = _run("plan", name, tmp_path)
        assert plan.returncode == 0 and "Plan for" in plan.stdout, plan.stderr
        return
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line and not re.match(r"^\d+ problems? found", line)]
    if name in UPSTREAM_INVALID:
        assert any(UPSTREAM_INVALID[name] in line for line in lines), lines
        return
    assert lines and all(REFUSAL.match(line) for line in lines), "\n".join(lines)


def test_manifest_names_every_file_with_its_commit() -> None:
    with open(CORPUS / "MANIFEST.tsv", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    listed = {f"{row['repository'].split('/')[1]}/{row['path']}" for row in rows}  # corpus/<repo name>/<path>
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*.yaml") if p.name != "INPUTS.yaml"}
    assert on_disk <= listed, sorted(on_disk - listed)
    assert all(re.fullmatch(r"[0-9a-f]{40}", row["commit"]) for row in rows), rows
    assert len(BLUEPRINTS) >= 50
