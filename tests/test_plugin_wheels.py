"""The two plugin distributions as wheels (contract §1, issue 18's packaging items).

- ``pip wheel src/plugins_aws`` (and docker) builds a wheel and writes nothing into the
  folder, which is the import package itself (no ``build/``, no ``*.egg-info``);
- each wheel depends on the core by its published name and names its plugin objects in
  the ``orchestrator.plugins`` group;
- installed next to the core wheel in a fresh venv *without* boto3 or docker, every
  plugin still loads and registers its types: the SDKs are imported when first used.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = {"plugins_aws": "orchestrator_aws", "plugins_docker": "orchestrator_docker"}
IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc")

pytestmark = pytest.mark.integration


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("ORCHESTRATOR_")}


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*") if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def wheels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("plugin-wheels")
    out = base / "wheels"
    sources = {}
    for package in PLUGINS:  # copies: a build in the shared tree would race with other builds
        sources[package] = base / "src" / package
        shutil.copytree(ROOT / "src" / package, sources[package], ignore=IGNORED)
    core = base / "core"
    shutil.copytree(ROOT / "src" / "orchestrator", core / "src" / "orchestrator", ignore=IGNORED)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, core / name)
    before = {package: _files(path) for package, path in sources.items()}
    builds = [subprocess.Popen([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                               env=_env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for src in (core, *sources.values())]
    for build in builds:
        _, err = build.communicate(timeout=600)
        assert build.returncode == 0, err
    for package, path in sources.items():
        assert _files(path) == before[package], f"the build wrote into {package}/"
    found = {w.name.split("-")[0]: w for w in out.glob("*.whl")}
    assert set(found) == {"orchestrator_engine", *PLUGINS.values()}, found
    return found


@pytest.mark.parametrize("package", PLUGINS)
def test_a_plugin_wheel_holds_its_package_only_and_names_its_plugins(wheels: dict[str, Path], package: str) -> None:
    with zipfile.ZipFile(wheels[PLUGINS[package]]) as wheel:
        names = wheel.namelist()
        meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
        metadata = wheel.read(meta).decode()
        entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert all(n.startswith((f"{package}/", f"{PLUGINS[package]}-")) for n in names), names
    assert f"{package}/__init__.py" in names and f"{package}/pyproject.toml" not in names
    assert "Requires-Dist: orchestrator-engine>=0.1" in metadata
    assert "[orchestrator.plugins]" in entry_points and ":plugin" in entry_points


def test_plugins_load_without_their_cloud_sdks(wheels: dict[str, Path], tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, env=_env())
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
                              *map(str, wheels.values())], capture_output=True, text=True, env=_env())
    assert install.returncode == 0, install.stderr
    # the core's own dependencies, from this environment's wheels cache or index (not boto3, not docker)
    deps = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           str(wheels["orchestrator_engine"])], capture_output=True, text=True, env=_env())
    assert deps.returncode == 0, deps.stderr
    proc = subprocess.run([str(venv / "bin" / "orchestrator"), "plugins", "list", "--json"], capture_output=True,
                          text=True, cwd=tmp_path, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    assert data["errors"] == []
    names = {p["name"] for p in data["plugins"]}
    assert {"aws", "aws_keypair", "aws_ec2_instance", "docker_image", "docker_container"} <= names
    missing = subprocess.run([str(python), "-c", "import boto3"], capture_output=True, text=True, env=_env())
    assert missing.returncode != 0  # really without boto3
    # the packaged Cloudify packs: types.yaml in the core wheel, the AWS and Docker packs in theirs
    corpus = ROOT / "tests" / "cloudify" / "corpus"
    for blueprint, inputs in (("cloudify-aws-plugin/examples/ec2-keys-feature-demo/blueprint.yaml", []),
                              ("cloudify-nodecellar-docker-example/ec2-blueprint.yaml",
                               ["-i", "image=ami-12c6146b", "-i", "size=t2.micro"])):
        shutil.copytree(corpus / Path(blueprint).parts[0], tmp_path / Path(blueprint).parts[0], dirs_exist_ok=True)
        proc = subprocess.run([str(venv / "bin" / "orchestrator"), "plan", blueprint, *inputs], capture_output=True,
                              text=True, cwd=tmp_path, env=_env(), timeout=120)
        assert proc.returncode == 0 and "wave 1" in proc.stdout, proc.stdout + proc.stderr
