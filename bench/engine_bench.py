"""Engine overhead: install + uninstall with no-op operations, and the 50 ms sleep case.

    python bench/engine_bench.py [--cases flat-1000,chain-200] [--json]

Cases (each in a fresh subprocess, so peak RSS is per case):
  flat-1000, flat-10000, chain-200, chain-1000: no-op operations, concurrency 10;
    reports microseconds per operation (3 install + 2 uninstall operations per node),
    wall and CPU (all threads).
  sleep-100: 100 flat nodes whose operations sleep 50 ms, concurrency 50; the ideal
    install is 3 operations x 50 ms x ceil(100 / 50) waves = 0.30 s.
State is a real SQLite file in a temporary directory (WAL, synchronous=NORMAL).

The workflow timings cover ``Prepared.run()`` only, as Cloudify's cover
``env.execute()`` only: loading, planning and saving the deployment
(``prepare_install`` plus the save that ``run()`` does under the lock) and reading it
back (``prepare_uninstall``) are timed apart.
"""

from __future__ import annotations

import argparse
import atexit
import json
import math
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from measure import Clock, peak_rss_mb, run_child  # noqa: E402

# name: (shape, nodes, operation sleep in seconds, concurrency)
CASES = {
    "flat-1000": ("flat", 1000, 0.0, 10),
    "flat-10000": ("flat", 10000, 0.0, 10),
    "chain-200": ("chain", 200, 0.0, 10),
    "chain-1000": ("chain", 1000, 0.0, 10),
    "sleep-100": ("flat", 100, 0.05, 50),
}
DEFAULT_CASES = "flat-1000,flat-10000,chain-200,chain-1000,sleep-100"


def run_case(name: str) -> dict[str, Any]:
    import noop_plugin

    from orchestrator.deployments import Orchestrator
    from orchestrator.engine.runner import Options
    from orchestrator.plugins import get_plugin_manager

    shape, n, sleep, concurrency = CASES[name]
    noop_plugin.SLEEP = sleep
    tmp = Path(tempfile.mkdtemp(prefix="orch-bench-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    path = tmp / "bp.yaml"
    path.write_text(generate(shape, n, base="bench.Noop"))
    pm = get_plugin_manager([noop_plugin], entry_points=False, env={})
    orch = Orchestrator(pm=pm, state_path=tmp / "state.db")
    options = Options(concurrency=concurrency, retries=0)
    rss_import = peak_rss_mb()
    with Clock() as prep_i:
        prepared = orch.prepare_install(path, deployment="bench")
        # Saving the plan runs under the deployment's lock, at the start of run(); it is
        # deployment creation, not engine work, so it is timed here (Cloudify's is not timed).
        assert prepared.before is not None
        prepared.before()
        prepared = prepared._replace(before=None)
    with Clock() as install:
        installed = prepared.run(options)
    with Clock() as prep_u:
        prepared = orch.prepare_uninstall("bench")
    with Clock() as uninstall:
        uninstalled = prepared.run(options)
    assert installed.ok and uninstalled.ok, (installed.failures, uninstalled.failures)
    ops = installed.operations + uninstalled.operations
    assert ops == 5 * n, ops  # every operation really ran
    states = {r.state for r in orch.store.instances("bench").values()}
    assert states == {"deleted"}, states
    busy, cpu = install.wall + uninstall.wall, install.cpu + uninstall.cpu
    row = {"case": name, "shape": shape, "nodes": n, "concurrency": concurrency, "sleep_ms": sleep * 1000,
           "prepare_install_s": prep_i.wall, "install_s": install.wall,
           "prepare_uninstall_s": prep_u.wall, "uninstall_s": uninstall.wall, "ops": ops,
           "per_op_us": busy / ops * 1e6, "cpu_install_s": install.cpu, "cpu_uninstall_s": uninstall.cpu,
           "cpu_s": cpu, "cpu_per_op_us": cpu / ops * 1e6, "rss_after_import_mb": rss_import,
           "peak_rss_mb": peak_rss_mb()}
    if sleep:
        waves = math.ceil(n / concurrency)
        row["ideal_install_s"] = 3 * sleep * waves
        row["ideal_uninstall_s"] = 2 * sleep * waves
        row["install_over_ideal"] = row["install_s"] / row["ideal_install_s"] - 1
    return row


def run_one(name: str, timeout: float | None = None) -> dict[str, Any]:
    """One case in a fresh process."""
    return run_child([sys.executable, str(Path(__file__).resolve()), "--one", name], timeout)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated, of: {', '.join(CASES)}")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_case(args.one)))
        return
    rows = []
    for name in args.cases.split(","):
        row = run_one(name)
        if "error" in row:
            raise SystemExit(f"{name}: {row['error']}\n{row.get('stderr', '')}")
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
