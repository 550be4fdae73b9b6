"""Parse + validate + plan time and peak memory for generated blueprints.

    python bench/plan_bench.py [--sizes 1000,10000,50000] [--shapes flat,chain,fanout] [--json]

Each measurement runs in a fresh subprocess so peak RSS is per size, not cumulative.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def measure_one(path: str) -> dict:
    from orchestrator.deployments import Orchestrator
    from orchestrator.plugins import get_plugin_manager

    pm = get_plugin_manager(entry_points=False)
    orch = Orchestrator(pm=pm, state_path=Path(tempfile.mkdtemp()) / "state.db")
    from orchestrator.dsl.loader import gc_paused
    from orchestrator.plan import build_plan

    t0 = time.perf_counter()
    bp = orch.load(path)
    t1 = time.perf_counter()
    with gc_paused():
        p = build_plan(bp)
        waves = p.waves()
    t2 = time.perf_counter()
    return {"parse_validate_s": t1 - t0, "plan_s": t2 - t1, "total_s": t2 - t0, "waves": len(waves),
            "instances": len(p.instances), "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


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
    sys.path.insert(0, str(HERE))
    from generate import generate

    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            for n in map(int, args.sizes.split(",")):
                path = Path(tmp) / f"{shape}-{n}.yaml"
                path.write_text(generate(shape, n))
                out = subprocess.run([sys.executable, __file__, "--one", str(path)], check=True,
                                     capture_output=True, text=True).stdout
                row = {"shape": shape, "nodes": n, **json.loads(out)}
                results.append(row)
                if not args.json:
                    print(f"{shape:7} {n:>6} nodes: parse+validate {row['parse_validate_s']:.3f}s  "
                          f"plan {row['plan_s']:.3f}s  total {row['total_s']:.3f}s  "
                          f"({row['total_s'] / n * 1e6:.0f} us/node)  peak {row['peak_rss_mb']:.0f} MB", flush=True)
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
