"""The example plugin as a user gets it: wheels installed into a fresh venv.

Builds the core and ``examples/hello-plugin`` as wheels, installs both into a new
virtual environment (dependencies come from the package index), and drives that venv's
``orchestrator`` command: the plugin is found through its real ``orchestrator.plugins``
entry point, ``plugins list`` describes it, and the example blueprint installs and
uninstalls. Nothing from this checkout is importable in that venv.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "hello-plugin"

pytestmark = pytest.mark.integration


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV") and not k.startswith("ORCHESTRATOR_")}
    env.update(extra)
    return env


def _check(proc: subprocess.CompletedProcess[str] | subprocess.Popen[str], what: str) -> None:
    if proc.returncode != 0:
        out, err = (proc.stdout, proc.stderr) if isinstance(proc, subprocess.CompletedProcess) else proc.communicate()
        pytest.fail(f"{what} failed ({proc.returncode}):\n{out}\n{err}")


IGNORED = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", ".*")


def _source_copies(into: Path) -> list[Path]:
    """Clean copies of the two projects: an in-tree build would leave ``build/`` behind,
    could package stale files from an earlier one, and races with a concurrent build."""
    core = into / "core"
    shutil.copytree(ROOT / "src" / "orchestrator", core / "src" / "orchestrator", ignore=IGNORED)
    for pattern in ("pyproject.toml", "setup.cfg", "MANIFEST.in", "README*", "LICENSE*"):
        for path in ROOT.glob(pattern):
            shutil.copy2(path, core / path.name)
    example = into / "hello-plugin"
    shutil.copytree(EXAMPLE, example, ignore=IGNORED)
    return [core, example]


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the core and the example plugin, both from wheels."""
    started = time.perf_counter()
    base = tmp_path_factory.mktemp("example-plugin")
    wheels = base / "wheels"
    env = _clean_env()
    # Both wheels build at once (each in its own isolated build environment).
    builds = [subprocess.Popen([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels),
                                str(project)], cwd=base, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
              for project in _source_copies(base / "src")]
    venv = base / "venv"
    # No pip inside: the running interpreter's pip installs into it (faster, still isolated).
    _check(subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)],
                          capture_output=True, text=True, env=env), "python -m venv")
    for build in builds:
        build.wait()
        _check(build, "pip wheel")
    found = sorted(p.name for p in wheels.glob("*.whl"))
    assert [n.split("-")[0] for n in found] == ["orchestrator_engine", "orchestrator_hello"], found
    python = venv / "bin" / "python"
    _check(subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                           *(str(wheels / n) for n in found)], capture_output=True, text=True, env=env),
           "pip install")
    print(f"\nfresh venv with both wheels ready in {time.perf_counter() - started:.1f}s")
    return venv


def run(venv: Path, *args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(venv / "bin" / "orchestrator"), *args], capture_output=True, text=True,
                          cwd=cwd, env=_clean_env(), timeout=120)
    if check:
        _check(proc, "orchestrator " + " ".join(args))
    return proc


def test_the_venv_runs_the_installed_wheels_only(venv: Path, tmp_path: Path) -> None:
    code = "import orchestrator, orchestrator_hello; print(orchestrator.__file__, orchestrator_hello.__file__)"
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, env=_clean_env())
    _check(proc, "import")
    for path in proc.stdout.split():
        assert Path(path).is_relative_to(venv), path


def test_plugins_list_shows_the_example_plugin(venv: Path, tmp_path: Path) -> None:
    data = json.loads(run(venv, "plugins", "list", "--json", cwd=tmp_path).stdout)
    assert data["errors"] == []
    plugins = {p["name"]: p for p in data["plugins"]}
    assert set(plugins) == {"orchestrator.builtin", "hello"}  # the core needs no other plugin
    hello = plugins["hello"]
    assert hello["distribution"] == "orchestrator-hello"
    assert hello["version"] == "0.1.0"
    assert hello["module"] == "orchestrator_hello.plugin:plugin"  # the entry point's value
    assert {"hello.File", "hello.Directory", "hello.relationships.file_in_directory"} <= set(hello["types"])
    assert {"register_types", "create", "delete", "establish", "unlink"} <= set(hello["hooks"])

    text = run(venv, "plugins", "list", cwd=tmp_path)
    assert "hello  [orchestrator-hello 0.1.0]  module orchestrator_hello.plugin:plugin" in text.stdout
    assert "hello.File" in text.stdout
    assert "establish" in text.stdout
    assert text.stderr == ""


def test_the_example_blueprint_installs_and_uninstalls(venv: Path, tmp_path: Path) -> None:
    out, state = tmp_path / "out", tmp_path / "state.db"
    blueprint = str(EXAMPLE / "blueprint.yaml")
    common = ("--state", str(state))

    run(venv, "validate", blueprint, "-i", f"directory={out}", cwd=tmp_path)
    installed = run(venv, "install", blueprint, "-i", f"directory={out}", "-i", "name=venv", *common,
                    cwd=tmp_path)
    assert "succeeded" in installed.stdout
    assert (out / "greeting.txt").read_text().startswith("Hello, venv!")
    assert (out / "README").read_text() == "This directory greets venv.\n"
    outputs = json.loads(run(venv, "outputs", "--json", *common, cwd=tmp_path).stdout)
    assert outputs["greeting_path"] == str(out / "greeting.txt")
    assert outputs["greeting_size"] == (out / "greeting.txt").stat().st_size
    status = json.loads(run(venv, "status", "--json", *common, cwd=tmp_path).stdout)
    assert {i["instance"]: i["state"] for i in status["instances"]} == {
        "site_0": "started", "greeting_0": "started", "readme_0": "started"}

    run(venv, "uninstall", *common, cwd=tmp_path)
    assert not out.exists()
