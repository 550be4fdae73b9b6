"""Parse + validate + plan time and peak memory for generated blueprints.

    python bench/plan_bench.py [--sizes 1000,10000,50000] [--shapes flat,chain,fanout] [--json]

Each measurement runs in a fresh subprocess so peak RSS is per size, not cumulative.
Importing the orchestrator is outside the timing (as importing Cloudify is in
``bench/cloudify/run_cloudify.py``); the timed part is what ``Orchestrator.plan`` does:
load (parse + validate + resolve functions), then build the plan.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from measure import Clock, peak_rss_mb, run_child  # noqa: E402


def measure_one(path: str) -> dict[str, Any]:
    from orchestrator.deployments import Orchestrator
    from orchestrator.dsl.loader import gc_paused
    from orchestrator.plan import build_plan
    from orchestrator.plugins import get_plugin_manager

    pm = get_plugin_manager(entry_points=False)
    tmp = tempfile.TemporaryDirectory(prefix="orch-bench-")  # removed when the process exits
    orch = Orchestrator(pm=pm, state_path=Path(tmp.name) / "state.db")  # (planning never opens it)
    rss_import = peak_rss_mb()
    with Clock() as load:
        bp = orch.load(path)
    with Clock() as plan, gc_paused():
        p = build_plan(bp)
        waves = p.waves()
    return {"parse_validate_s": load.wall, "plan_s": plan.wall, "total_s": load.wall + plan.wall,
            "cpu_s": load.cpu + plan.cpu, "waves": len(waves), "instances": len(p.instances),
            "rss_after_import_mb": rss_import, "peak_rss_mb": peak_rss_mb()}


def run_one(shape: str, n: int, workdir: Path | str, timeout: float | None = None) -> dict[str, Any]:
    """Generate the blueprint into ``workdir`` and measure it in a fresh process."""
    path = Path(workdir) / f"{shape}-{n}.yaml"
    if not path.exists():
        path.write_text(generate(shape, n))
    row = run_child([sys.executable, str(Path(__file__).resolve()), "--one", str(path)], timeout)
    return {"shape": shape, "nodes": n, **row}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1000,10000,50000")
    ap.add_argument("--shapes", default="flat,chain,fanout")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            for n in map(int, args.sizes.split(",")):
                row = run_one(shape, n, tmp)
                if "error" in row:
                    raise SystemExit(f"{shape} {n}: {row['error']}\n{row.get('stderr', '')}")
                results.append(row)
                if not args.json:
                    print(f"{shape:7} {n:>6} nodes: parse+validate {row['parse_validate_s']:.3f}s  "
                          f"plan {row['plan_s']:.3f}s  total {row['total_s']:.3f}s (cpu {row['cpu_s']:.3f}s)  "
                          f"({row['total_s'] / n * 1e6:.0f} us/node)  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
