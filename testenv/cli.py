"""The ``orchestrator`` CLI as the plugin tests run it: a child process on one state file.

The child finds the plugins by their entry points (the installed distributions), exactly
as a user's shell does; ``ORCHESTRATOR_*`` variables of the test run are not passed on.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def cli(*args: str, cwd: Path, check: bool = True, background: bool = False) -> Any:
    """``python -m orchestrator ARGS --state state.db`` in ``cwd``: its ``CompletedProcess``
    (asserted to exit 0 with ``check``), or with ``background`` a ``Popen`` (output dropped)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    argv = [sys.executable, "-m", "orchestrator", *args, "--state", str(cwd / "state.db")]
    if background:
        return subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def cli_and_modules(*args: str, cwd: Path, env: Mapping[str, str] = {}) -> tuple[Any, set[str]]:
    """The command line in a fresh Python (``env`` added to this one's, ``ORCHESTRATOR_*`` left out):
    its ``CompletedProcess``, and the modules it imported (empty if it died before saying)."""
    code = ("import json, sys\nfrom orchestrator.cli import cli\n"
            f"try:\n    cli({list(args)!r}, standalone_mode=False)\n"
            "except SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
            "print(json.dumps(sorted(sys.modules)))\nsys.exit(code)\n")
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environ.update(env)
    done = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=environ, capture_output=True, text=True,
                          timeout=120)
    lines = done.stdout.strip().splitlines()
    return done, set(json.loads(lines[-1])) if lines and lines[-1].startswith("[") else set()


def runtime(cwd: Path, deployment: str) -> dict[str, dict[str, Any]]:
    """Runtime properties by instance, from the state file (``status`` does not show them)."""
    with contextlib.closing(sqlite3.connect(cwd / "state.db")) as db:
        rows = db.execute("SELECT id, runtime FROM instances WHERE deployment = ?", (deployment,))
        return {iid: json.loads(data) for iid, data in rows}
