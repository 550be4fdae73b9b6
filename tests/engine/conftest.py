"""Fixtures for engine tests: the journaling plugin, in-process and as a real distribution."""

from __future__ import annotations

import sys
from pathlib import Path

import journal_plugin
import pytest
from testenv.dists import write_distribution

HERE = Path(__file__).resolve().parent


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[str]:
        return self.path.read_text().splitlines() if self.path.exists() else []

    def calls(self, op: str) -> list[str]:
        """Instances (or 'source target') an operation was called for, in order."""
        return [line.split(" ", 1)[1] for line in self.lines() if line.split(" ", 1)[0] == op]

    def finished(self, op: str) -> list[str]:
        return [line.split(" ", 2)[2] for line in self.lines() if line.startswith(f"done {op} ")]


@pytest.fixture
def journal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Journal:
    path = tmp_path / "journal.log"
    monkeypatch.setenv("ORCH_TEST_JOURNAL", str(path))
    return Journal(path)


@pytest.fixture
def jplugin():
    return journal_plugin


@pytest.fixture(scope="session")
def journal_dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real installed distribution 'orchestrator-journal' exposing the plugin by entry point."""
    root = tmp_path_factory.mktemp("dist")
    source = (HERE / "journal_plugin.py").read_text()
    return write_distribution(root, "orchestrator-journal", {"journal": "orchestrator_journal"},
                              {"orchestrator_journal.py": source})


@pytest.fixture
def journal_on_path(journal_dist: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The distribution importable in this process (entry points discoverable)."""
    import importlib

    monkeypatch.syspath_prepend(str(journal_dist))
    importlib.invalidate_caches()
    yield journal_dist
    sys.modules.pop("orchestrator_journal", None)


@pytest.fixture
def cli(journal_dist: Path, tmp_path: Path):
    """Run ``python -m orchestrator`` in a subprocess with the journal distribution installed."""
    import os
    import subprocess

    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(journal_dist), env.get("PYTHONPATH", "")]))
    env["ORCH_TEST_JOURNAL"] = str(tmp_path / "journal.log")
    env.pop("ORCHESTRATOR_PLUGINS", None)

    def run(*args: str, background: bool = False, **kwargs):
        cmd = [sys.executable, "-m", "orchestrator", *args]
        environ = kwargs.pop("env", env)
        if background:
            return subprocess.Popen(cmd, env=environ, cwd=tmp_path, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, **kwargs)
        kwargs.setdefault("timeout", 120)
        return subprocess.run(cmd, env=environ, cwd=tmp_path, capture_output=True, text=True, **kwargs)

    run.env = env
    return run
