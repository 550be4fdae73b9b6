"""Helpers the engine's process tests share: waiting for a condition, reading the journal
and the state (a SQLite file or a PostgreSQL URL), checking a one-line failure, and running
the CLI on a pseudo-terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path


def wait_for(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def journal_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "journal.log"
    return path.read_text().splitlines() if path.exists() else []


def state_rows(state: Path | str, sql: str) -> list[tuple]:
    """The rows of one query on the state's own database, whichever store holds it."""
    if isinstance(state, str) and state.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(state, autocommit=True) as db:
            cur = db.execute(sql)
            return [tuple(r) for r in cur.fetchall()] if cur.description else []
    with sqlite3.connect(state) as db:
        return db.execute(sql).fetchall()


def instance_rows(state: Path | str) -> dict[str, tuple[str, dict]]:
    return {i: (s, json.loads(o)) for i, s, o in state_rows(state, "SELECT id, state, ops FROM instances")}


def clean_failure(result, *needles: str, code: int = 1) -> None:
    """The command failed with ``code`` and one line ``error: ...`` holding every needle, no traceback."""
    assert result.returncode == code, (result.args, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def run_in_terminal(cli, tmp_path: Path, *args: str, on_tick: Callable[[subprocess.Popen], None] | None = None,
                    columns: int = 100) -> tuple[int, str]:
    """Run the CLI attached to a pseudo-terminal (isatty() is true) and collect the screen bytes;
    ``on_tick(proc)`` is called between reads (to send a signal at the right moment, say)."""
    main, child = pty.openpty()
    env = dict(cli.env, TERM="xterm-256color", COLUMNS=str(columns), LINES="30")
    proc = subprocess.Popen([sys.executable, "-m", "orchestrator", *args], cwd=tmp_path, env=env,
                            stdin=child, stdout=child, stderr=child, close_fds=True)
    os.close(child)
    chunks, deadline = [], time.monotonic() + 60
    while time.monotonic() < deadline:
        if on_tick is not None:
            on_tick(proc)
        ready, _, _ = select.select([main], [], [], 0.05)
        if ready:
            try:
                data = os.read(main, 65536)
            except OSError:
                break
            if not data:
                break
            chunks.append(data)
        elif proc.poll() is not None:
            break
    proc.wait(timeout=10)
    os.close(main)
    return proc.returncode, b"".join(chunks).decode("utf-8", "replace")
