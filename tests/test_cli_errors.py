"""What nothing expected still ends in one line: a damaged state when SQLite's check says so,
else an internal error naming where it happened; the traceback only when asked for."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from orchestrator.cli.common import handle_errors, state_option


@click.command()
@state_option
@handle_errors
def broken(state: Path, state_recover: bool) -> None:
    raise TypeError("sequence item 0: expected str instance, NoneType found")


def _state(path: Path, damaged: bool) -> Path:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE t (a TEXT)")
        db.executemany("INSERT INTO t VALUES (?)", [("x" * 500,)] * 200)
        db.execute("CREATE INDEX t_a ON t (a)")
    if damaged:  # a page of the table zeroed: the index no longer matches it
        data = bytearray(path.read_bytes())
        data[4096 * 2:4096 * 3] = bytes(4096)
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("damaged", [False, True])
def test_an_unexpected_error_is_one_line(tmp_path: Path, damaged: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ORCHESTRATOR_DEBUG", raising=False)
    state = _state(tmp_path / "s.db", damaged)
    result = CliRunner().invoke(broken, ["--state", str(state)])
    assert result.exit_code == 1
    [line] = result.output.splitlines()
    if damaged:
        assert line.startswith(f"error: the state {state} is damaged (SQLite's check fails; the command stopped on "
                               f"TypeError: sequence item 0")
    else:
        assert line.startswith("error: internal error (TypeError: sequence item 0: expected str instance, NoneType "
                               "found at test_cli_errors.py:")
        assert line.endswith("this is a bug: please report it with what the same command prints with "
                             "ORCHESTRATOR_DEBUG=1")


def test_the_traceback_when_asked_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ORCHESTRATOR_DEBUG", "1")
    result = CliRunner().invoke(broken, ["--state", str(_state(tmp_path / "s.db", False))])
    assert isinstance(result.exception, TypeError)
