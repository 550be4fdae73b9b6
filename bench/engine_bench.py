"""Engine overhead: install + uninstall with no-op operations, and the 50 ms sleep case.

    python bench/engine_bench.py [--json]

Cases (each in a fresh subprocess, so peak RSS is per case):
  flat-1000, flat-10000, chain-1000: no-op operations, concurrency 10; reports
    microseconds per operation (3 install + 2 uninstall operations per node).
  sleep-100: 100 flat nodes whose operations sleep 50 ms, concurrency 50; the ideal
    install is 3 operations x 50 ms x ceil(100 / 50) waves = 0.30 s.
State is a real SQLite file in a temporary directory (WAL, synchronous=NORMAL).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = {
    "flat-1000": ("flat", 1000, 0.0, 10),
    "flat-10000": ("flat", 10000, 0.0, 10),
    "chain-1000": ("chain", 1000, 0.0, 10),
    "sleep-100": ("flat", 100, 0.05, 50),
}


def run_case(name: str) -> dict:
    sys.path.insert(0, str(HERE))
    import noop_plugin
    from generate import generate

    from orchestrator.deployments import Orchestrator
    from orchestrator.engine.runner import Options
    from orchestrator.plugins import get_plugin_manager

    shape, n, sleep, concurrency = CASES[name]
    noop_plugin.SLEEP = sleep
    tmp = Path(tempfile.mkdtemp())
    path = tmp / "bp.yaml"
    path.write_text(generate(shape, n, base="bench.Noop"))
    pm = get_plugin_manager([noop_plugin], entry_points=False, env={})
    orch = Orchestrator(pm=pm, state_path=tmp / "state.db")
    options = Options(concurrency=concurrency, retries=0)
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    installed = orch.install(path, deployment="bench", options=options)
    t1 = time.perf_counter()
    uninstalled = orch.uninstall("bench", options=options)
    t2 = time.perf_counter()
    cpu = time.process_time() - cpu0
    assert installed.ok and uninstalled.ok, (installed.failures, uninstalled.failures)
    ops = installed.operations + uninstalled.operations
    assert ops == 5 * n, ops  # every operation really ran
    row = {"case": name, "nodes": n, "concurrency": concurrency, "install_s": t1 - t0,
           "uninstall_s": t2 - t1, "ops": ops, "per_op_us": (t2 - t0) / ops * 1e6,
           "cpu_s": cpu, "cpu_per_op_us": cpu / ops * 1e6,
           "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    if sleep:
        waves = math.ceil(n / concurrency)
        row["ideal_install_s"] = 3 * sleep * waves
        row["ideal_uninstall_s"] = 2 * sleep * waves
        row["install_over_ideal"] = row["install_s"] / row["ideal_install_s"] - 1
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one)))
        return
    rows = []
    for name in args.cases.split(","):
        out = subprocess.run([sys.executable, __file__, "--one", name], check=True, capture_output=True,
                             text=True).stdout
        row = json.loads(out)
        rows.append(row)
        if not args.json:
            line = (f"{name:11} install {row['install_s']:.3f}s  uninstall {row['uninstall_s']:.3f}s  "
                    f"{row['per_op_us']:.0f} us/op (cpu {row['cpu_per_op_us']:.0f})  peak {row['peak_rss_mb']:.0f} MB")
            if "ideal_install_s" in row:
                line += f"  (ideal install {row['ideal_install_s']:.2f}s, +{row['install_over_ideal'] * 100:.1f}%)"
            print(line, flush=True)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
