"""Bad blueprints through the real CLI: exact ``FILE:LINE:COL: message`` lines, exit 2, no traceback.

Every ``corpus/*.yaml`` is a case (files under ``corpus/lib`` and ``corpus/inputs`` are
imported or passed with ``-i`` by the cases). A case starts with a comment block::

    # What the case covers.
    # args: -i port=http -i inputs/bad_values.yaml      (optional; shell-quoted)
    # expect:
    # my_case.yaml:12:5: node template 'vm': ...
    # lib/imported.yaml:3:7: ...

The expected lines are exactly the problem lines the CLI prints to stderr, in order, with
FILE relative to ``corpus/`` (``<-i>`` marks a ``-i`` argument: LINE is the argument's
number, COL the position in it). The ``N problems found`` summary line is checked too.
Adding a case is adding a file.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path

import attrs
import pytest
from click.testing import CliRunner

from orchestrator.cli import cli

CORPUS = Path(__file__).parent / "corpus"
CASES = sorted(CORPUS.glob("*.yaml"))
# Entry-point plugins installed in the venv (aws, docker) must not change the messages.
ENV = {"ORCHESTRATOR_PLUGINS": "none"}


@attrs.define
class Case:
    path: Path
    args: list[str]
    expected: list[str]


def read_case(path: Path) -> Case:
    args: list[str] = []
    expected: list[str] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.startswith("#"):
            break
        text = line[1:].strip()
        if expected is not None:
            if text:
                expected.append(text)
        elif text.startswith("args:"):
            args = shlex.split(text[len("args:"):])
        elif text == "expect:":
            expected = []
    assert expected, f"{path.name}: no '# expect:' lines at the top"
    return Case(path, args, expected)


def summary(n: int) -> str:
    return f"{n} problem{'s' if n != 1 else ''} found"


def test_corpus_is_complete() -> None:
    assert len(CASES) >= 40
    for path in CASES:
        read_case(path)  # every case states what it expects


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_bad_blueprint(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    case = read_case(path)
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(cli, ["validate", path.name, *case.args], env=ENV)
    assert "Traceback" not in result.output + result.stderr
    assert result.exc_info is not None and result.exc_info[0] is SystemExit, result.exc_info
    assert result.stdout == ""
    assert result.stderr.splitlines() == [*case.expected, summary(len(case.expected))]
    assert result.exit_code == 2


def test_plan_reports_the_same_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    case = read_case(CORPUS / "many_problems.yaml")
    monkeypatch.chdir(CORPUS)
    result = CliRunner().invoke(cli, ["plan", "--json", case.path.name], env=ENV)
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [*case.expected, summary(len(case.expected))]


def _from_repo_root(line: str, root: Path) -> str:
    """``lib/x.yaml:3:5: m`` as printed when the command runs from ``root`` instead of corpus/."""
    file, sep, rest = line.partition(":")
    if file.startswith("<"):
        return line
    return f"{(CORPUS / file).relative_to(root).as_posix()}{sep}{rest}"


@pytest.mark.parametrize("name", ["import_errors_in_imported_file", "inputs_file_errors"])
def test_subprocess_from_another_directory(name: str) -> None:
    """``python -m orchestrator`` run from the repository root: paths are shown relative to it."""
    root = CORPUS.parents[2]
    case = read_case(CORPUS / f"{name}.yaml")
    args = [str((CORPUS / a).relative_to(root)) if (CORPUS / a).is_file() else a for a in case.args]
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", str(case.path.relative_to(root)), *args],
        cwd=root, capture_output=True, text=True, env={**os.environ, **ENV}, timeout=60,
    )
    expected = [_from_repo_root(line, root) for line in case.expected]
    assert proc.stdout == ""
    assert "Traceback" not in proc.stderr
    assert proc.stderr.splitlines() == [*expected, summary(len(expected))]
    assert proc.returncode == 2


def test_missing_blueprint_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["validate", "nope.yaml"], env=ENV)
    assert result.stderr.splitlines() == [
        "nope.yaml:1:1: cannot read file: No such file or directory", summary(1),
    ]
    assert result.exit_code == 2
