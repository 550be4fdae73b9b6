"""A command imports what it uses: start-up is mostly imports (``bench/cli_bench.py``).

Checked without timing: a fresh process runs the real command line, then lists the
modules it imported. ``status`` needs neither the plugins, the engine, the planner nor
attrs; ``plan`` of a clean blueprint needs no PyYAML (the positioned slow path), no rich,
no diff, and, once the entry points are remembered (``plugin_index.py``), no
``importlib.metadata``, no plugin and no attrs; no command imports a cloud SDK before an
operation needs it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from testenv.cli import cli_and_modules

BLUEPRINT = "node_templates:\n  one: {type: orchestrator.nodes.Root}\n"
CLOUD_SDKS = {"boto3", "botocore", "docker"}


def _imported(tmp_path: Path, *args: str) -> set[str]:
    done, modules = cli_and_modules(*args, cwd=tmp_path, env={"XDG_CACHE_HOME": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    return modules


@pytest.fixture
def deployed(tmp_path: Path) -> Path:
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    _imported(tmp_path, "install", "bp.yaml", "--state", "state.db")
    return tmp_path


def test_status_imports_no_plugin_and_no_engine(deployed: Path) -> None:
    modules = _imported(deployed, "status", "--state", "state.db")
    assert "orchestrator.state.sqlite" in modules  # it did read the state
    heavy = {"pluggy", "yaml", "rich", "importlib.metadata", "orchestrator.plugins", "orchestrator.engine.runner",
             "orchestrator.diff", "orchestrator.dsl.loader", "plugins_aws", "plugins_docker", "attrs", "attr",
             "orchestrator.plan", "orchestrator.dsl.model", "socket"} | CLOUD_SDKS
    assert not heavy & modules, sorted(heavy & modules)


def test_plan_imports_neither_pyyaml_nor_the_engine_and_remembers_entry_points(deployed: Path) -> None:
    first = _imported(deployed, "plan", "bp.yaml")
    assert "orchestrator.plugins" in first and "pluggy" in first
    warm = _imported(deployed, "plan", "bp.yaml")
    heavy = {"yaml", "rich", "importlib.metadata", "orchestrator.diff", "orchestrator.engine.runner",
             # the plugins are known from the index: a blueprint of core types imports none of them
             "plugins_aws", "plugins_docker", "hello_plugin", "orchestrator.sdk",
             # the models planning builds are plain records (orchestrator/record.py)
             "attrs", "attr", "dataclasses", "hashlib", "difflib"} | CLOUD_SDKS
    assert not heavy & warm, sorted(heavy & warm)


def test_a_blueprint_with_a_syntax_error_still_gets_its_position(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("node_templates:\n  one: {type: [\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    done = subprocess.run([sys.executable, "-m", "orchestrator", "plan", "bad.yaml"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.startswith("bad.yaml:3:1: YAML syntax error"), done.stderr
    assert "Traceback" not in done.stderr
