"""Day 2 on a big deployment: ``plan -d`` (the diff) and a no-change ``update``, 1,000 nodes.

    python bench/day2_bench.py [--nodes 1000] [--shape flat] [--repeat 3] [--json]

A deployment of n no-op nodes (``bench/noop_plugin.py``) is installed once; then each
run, in the same process as a user's command would do it after start-up:
  plan -d     ``Orchestrator.propose``: load, validate, plan against the deployment
              (kept ids), diff (every instance compared property by property);
  update      ``prepare_update`` + ``run()`` with the same blueprint: the diff is empty,
              so the run takes the lock, finds nothing to do and records the execution.
Goal (issue 15): each under 1 s at 1,000 nodes.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from measure import Clock  # noqa: E402

GOAL_S = 1.0


def run(nodes: int, shape: str, repeat: int) -> list[dict[str, Any]]:
    import noop_plugin

    from orchestrator.deployments import Orchestrator
    from orchestrator.engine.options import Options
    from orchestrator.plugins import get_plugin_manager

    tmp = Path(tempfile.mkdtemp(prefix="orch-day2-bench-"))
    try:
        path = tmp / "bp.yaml"
        path.write_text(generate(shape, nodes, base="bench.Noop"))
        pm = get_plugin_manager([noop_plugin], entry_points=False, env={})
        orch = Orchestrator(pm=pm, state_path=tmp / "state.db")
        options = Options(concurrency=10, retries=0)
        installed = orch.install(path, deployment="bench", options=options)
        assert installed.ok, installed.failures
        rows = []
        for case in ("plan -d", "update"):
            walls, cpus = [], []
            for _ in range(repeat):
                with Clock() as clock:
                    if case == "plan -d":
                        proposal = orch.propose(path, None, "bench")
                        assert not proposal.diff.changes, proposal.diff.changes[:3]
                    else:
                        result = orch.prepare_update(path, None, "bench").run(options)
                        assert result.ok and result.operations == 0, (result.failures, result.operations)
                walls.append(clock.wall)
                cpus.append(clock.cpu)
            rows.append({"case": case, "nodes": nodes, "shape": shape, "runs": walls,
                         "median_s": statistics.median(walls), "min_s": min(walls),
                         "cpu_median_s": statistics.median(cpus)})
        orch.close()
        return rows
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--shape", default="flat", choices=("flat", "chain"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    rows = run(args.nodes, args.shape, args.repeat)
    if args.json:
        print(json.dumps({"day2": rows}))
        return
    for r in rows:
        status = "met" if r["median_s"] < GOAL_S else "MISSED"
        print(f"{r['case']:8} {r['nodes']} nodes ({r['shape']}): median {r['median_s']:.3f} s "
              f"(min {r['min_s']:.3f} s, cpu {r['cpu_median_s']:.3f} s; goal < {GOAL_S:g} s {status})")


if __name__ == "__main__":
    main()
