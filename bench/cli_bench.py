"""The command line's start-up with every plugin installed: ``plan`` and ``status`` of one node.

    python bench/cli_bench.py [--repeat 7] [--json]

Each run is a fresh ``orchestrator`` process (as a user runs it) on a one-node blueprint,
with the core, both plugins and the example plugin installed; the same with
``ORCHESTRATOR_PLUGINS=none`` (no plugin module imported) tells what the plugins cost.
Goal (issue 18): ``plan`` and ``status`` <= 150 ms wall.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL_S = 0.150
BLUEPRINT = "node_templates:\n  one: {type: orchestrator.nodes.Root}\n"


def _orchestrator() -> str:
    found = shutil.which("orchestrator", path=str(Path(sys.executable).parent))
    if found is None:
        raise SystemExit("no orchestrator command beside this Python")
    return found


def _time(argv: list[str], cwd: Path, env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def _compile_sources() -> None:
    """Bytecode for the editable checkout, as pip writes it for an installed wheel.

    Under ``PYTHONDONTWRITEBYTECODE`` (set on these machines) an editable install never
    gets any, and every run would compile the core and the plugins again (~0.2 s).
    """
    root = Path(__file__).resolve().parent.parent
    import compileall

    for folder in (root / "src", root / "examples" / "hello-plugin" / "src"):
        compileall.compile_dir(str(folder), quiet=1)


def run(repeat: int) -> list[dict[str, Any]]:
    command = _orchestrator()
    _compile_sources()
    tmp = Path(tempfile.mkdtemp(prefix="orch-cli-bench-"))
    try:
        (tmp / "bp.yaml").write_text(BLUEPRINT)
        base = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        state = ["--state", str(tmp / "state.db")]
        subprocess.run([command, "install", "bp.yaml", *state], cwd=tmp, env=base, check=True, capture_output=True)
        cases = {
            "plan": ([command, "plan", "bp.yaml"], base),
            "status": ([command, "status", *state], base),
            "plan, no plugin": ([command, "plan", "bp.yaml"], {**base, "ORCHESTRATOR_PLUGINS": "none"}),
        }
        rows = []
        for name, (argv, env) in cases.items():
            _time(argv, tmp, env)  # warm the page cache
            walls = [_time(argv, tmp, env) for _ in range(repeat)]
            rows.append({"case": name, "runs": walls, "median_s": statistics.median(walls), "min_s": min(walls)})
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run(args.repeat)
    if args.json:
        print(json.dumps({"cli": rows}))
        return
    for r in rows:
        print(f"{r['case']:16} median {r['median_s'] * 1000:4.0f} ms  (min {r['min_s'] * 1000:.0f} ms; goal <= "
              f"{GOAL_S * 1000:.0f} ms for plan and status)")


if __name__ == "__main__":
    main()
