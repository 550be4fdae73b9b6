"""Real Cloudify blueprints (tests/cloudify/corpus, MANIFEST.tsv says where each comes from).

Each one validates, or is refused with ``FILE:LINE:COL: message`` lines and exit 2:
never a traceback. The ones we run validate with the inputs given here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

CORPUS = Path(__file__).parent / "corpus"
IMPORTED_ONLY = {"cloudify-docker-plugin/plugin.yaml"}  # imported by the pull test, not a blueprint
BLUEPRINTS = sorted(p for p in CORPUS.rglob("*.yaml") if str(p.relative_to(CORPUS)) not in IMPORTED_ONLY)
PROBLEM = re.compile(r"^\S+:\d+:\d+: .+$")
VALID = {
    "cloudify-aws-plugin/examples/ec2-keys-feature-demo/blueprint.yaml": [],
    "cloudify-docker-plugin/docker_plugin/tests/blueprint/test_pull-blueprint.yaml":
        ["-i", "test_repo=busybox", "-i", "test_tag=latest"],
    "blueprint-examples/introduction-to-blueprints/ex1-input-output-blueprint.yaml": [],
}


def _validate(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "orchestrator", "validate", str(path), *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("path", BLUEPRINTS, ids=lambda p: str(p.relative_to(CORPUS)))
def test_validates_or_is_refused_clearly(path: Path) -> None:
    result = _validate(path)
    assert "Traceback" not in result.stderr
    if result.returncode == 0:
        return
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line and not re.match(r"^\d+ problems? found", line)]
    assert lines and all(PROBLEM.match(line) for line in lines), result.stderr


@pytest.mark.parametrize("name", sorted(VALID))
def test_runs(name: str) -> None:
    result = _validate(CORPUS / name, *VALID[name])
    assert result.returncode == 0, result.stderr
