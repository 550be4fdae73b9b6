"""``make bench``: orchestrator and Cloudify's local mode on the same generated workloads, in one run.

    python bench/run.py [--repeat 3] [--cloudify-timeout 120] [--quick] [--out bench/results]
    python bench/report.py bench/results/latest.json      # re-render the Markdown and plots only

Cases (every measurement is a fresh process; see bench/README.md):
  plan    parse + validate + plan; flat and chain; ours at 100 .. 20,000 nodes, Cloudify at
          100 / 1,000 / 5,000 (Cloudify's runs of >= 1,000 nodes once each, 5,000 under a timeout)
  engine  install + uninstall, no-op operations: flat-1000, chain-200 (concurrency / pool 10);
          sleep-100: 100 flat nodes, 50 ms operations, concurrency / pool 50 (ideal install 0.30 s)
  workers hook calls on Celery workers (remote_bench.py): 1,000 nodes x 3 operations of 200 ms
          with the local executor and 1, 2, 4 workers; no-op overhead per operation
  day2    plan -d and a no-change update of a 1,000-node deployment (day2_bench.py)
  state   100 deployments installed from 10 CLI processes at once, on one PostgreSQL and on one SQLite file

Writes bench/results/latest.json (raw rows and machine info), latest.md and PNG plots.
Creates Cloudify's virtualenv with bench/cloudify/setup.sh if it is missing.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import cli_bench  # noqa: E402
import engine_bench  # noqa: E402
import plan_bench  # noqa: E402
import report  # noqa: E402
from measure import load_average, machine_info, run_child  # noqa: E402

CFY_DIR = HERE / "cloudify"
CFY_PY = HERE / ".venv-cloudify" / "bin" / "python"
CFY_RUN = CFY_DIR / "run_cloudify.py"

SHAPES = ("flat", "chain")
OUR_PLAN_SIZES = (100, 1000, 5000, 10000, 20000)
CFY_PLAN_SIZES = (100, 1000, 5000)
CFY_SLOW_NODES = 1000  # Cloudify plans of this many nodes and more run once (about 20 s flat, 40 s chain)
CFY_TIMEOUT_NODES = 5000  # ... and from this size on under --cloudify-timeout
ENGINE_CASES = ("flat-1000", "chain-200", "sleep-100")  # names from engine_bench.CASES
SLEEP_MIN_REPEAT = 5  # the sleep case is short and the noisiest: at least this many runs
RUN_TIMEOUT = 900.0  # a hang guard for every other run


def _versions(names: tuple[str, ...]) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def _git() -> dict[str, Any]:
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=HERE.parent, capture_output=True, text=True).stdout.strip()
    status = git("status", "--porcelain")
    return {"commit": git("rev-parse", "HEAD") or None, "uncommitted_changes": len(status.splitlines())}


def ensure_cloudify() -> dict[str, Any]:
    """Cloudify's venv (created by setup.sh when missing or broken) and its versions."""
    probe = ("import importlib.metadata as m, json, platform; from cloudify.workflows import local; "
             "print(json.dumps({'python': platform.python_version(), "
             "'cloudify-common': m.version('cloudify-common'), 'networkx': m.version('networkx')}))")
    for attempt in range(2):
        if CFY_PY.exists():
            res = subprocess.run([str(CFY_PY), "-c", probe], capture_output=True, text=True)
            if res.returncode == 0:
                return json.loads(res.stdout)
        if attempt == 0:
            print(f"Cloudify venv missing or broken: running {CFY_DIR / 'setup.sh'}", flush=True)
            subprocess.run(["bash", str(CFY_DIR / "setup.sh")], check=True)
    raise SystemExit("bench/cloudify/setup.sh did not produce a working Cloudify venv")


class Suite:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.workdir = Path(args.workdir)
        self.rows: list[dict[str, Any]] = []
        self.started = time.time()
        self.t0 = time.perf_counter()
        self.meta: dict[str, Any] = {}
        self.plugins: dict[str, Any] = {}  # cli_bench and aws_bench rows (plugins_report.py)
        self.state: list[dict[str, Any]] = []  # postgres_bench rows (state_report.py)
        self.day2: list[dict[str, Any]] = []  # day2_bench rows (day2_report.py)

    # -- running -------------------------------------------------------------------

    def run(self, system: str, kind: str, case: str, run: int, runs: int, fn: Any, **fields: Any) -> dict[str, Any]:
        load = load_average()
        t = time.perf_counter()
        row = fn()
        row = {"system": system, "kind": kind, "case": case, "run": run, "load_before": load,
               "started_s": round(t - self.t0, 2), **fields, **row}
        if kind == "plan" and "error" not in row:
            # Ours: load + build_plan; Cloudify: local.init_env (parse, validate, plan, storage).
            row["wall_s"] = row["total_s"] if system == "orchestrator" else row["plan_s"]
        self.rows.append(row)
        self._progress(row, runs)
        self.save()
        return row

    def _progress(self, r: dict[str, Any], runs: int) -> None:
        head = f"[{time.perf_counter() - self.t0:6.0f}s] {r['system']:12} {r['kind']:6} {r['case']:12} {r['run']}/{runs}"
        if "error" in r:
            extra = f" after {r['timeout_s']:.0f} s" if r["error"] == "timeout" else f": {r.get('stderr', '')[-300:]}"
            print(f"{head}  {r['error'].upper()}{extra}", flush=True)
        elif r["kind"] == "plan":
            print(f"{head}  {r['wall_s']:8.3f} s  cpu {r['cpu_s']:8.3f} s  peak {r['peak_rss_mb']:5.0f} MB"
                  f"  load {r['load_before'][0]:.2f}", flush=True)
        else:
            print(f"{head}  install {r['install_s']:.3f} s  uninstall {r['uninstall_s']:.3f} s  "
                  f"{r['per_op_us']:6.0f} us/op (cpu {r['cpu_per_op_us']:4.0f})  peak {r['peak_rss_mb']:4.0f} MB"
                  f"  load {r['load_before'][0]:.2f}", flush=True)

    def ours_plan(self, shape: str, n: int, run: int, runs: int) -> None:
        self.run("orchestrator", "plan", f"{shape}-{n}", run, runs,
                 lambda: plan_bench.run_one(shape, n, self.workdir, RUN_TIMEOUT), shape=shape, nodes=n)

    def cfy_plan(self, shape: str, n: int, run: int, runs: int, timeout: float) -> dict[str, Any]:
        argv = [str(CFY_PY), str(CFY_RUN), "--shape", shape, "--nodes", str(n), "--mode", "plan", "--json"]
        return self.run("cloudify", "plan", f"{shape}-{n}", run, runs, lambda: run_child(argv, timeout),
                        shape=shape, nodes=n)

    def ours_engine(self, case: str, run: int, runs: int) -> None:
        self.run("orchestrator", "engine", case, run, runs, lambda: engine_bench.run_one(case, RUN_TIMEOUT))

    def cfy_engine(self, case: str, run: int, runs: int) -> None:
        shape, n, sleep, concurrency = engine_bench.CASES[case]
        argv = [str(CFY_PY), str(CFY_RUN), "--shape", shape, "--nodes", str(n), "--concurrency", str(concurrency),
                "--json"]
        argv += ["--mode", "sleep", "--sleep-ms", str(sleep * 1000)] if sleep else ["--mode", "install"]
        self.run("cloudify", "engine", case, run, runs, lambda: run_child(argv, RUN_TIMEOUT))

    def go(self) -> None:
        a = self.args
        ours_sizes, cfy_sizes = a.our_sizes, a.cloudify_sizes
        fast_cfy = [n for n in cfy_sizes if n < CFY_SLOW_NODES]
        slow_cfy = [n for n in cfy_sizes if CFY_SLOW_NODES <= n < CFY_TIMEOUT_NODES]
        capped_cfy = [n for n in cfy_sizes if n >= CFY_TIMEOUT_NODES]

        print(f"== plan: ours at {ours_sizes}, Cloudify at {fast_cfy} ({a.repeat} runs each, interleaved)", flush=True)
        for rep in range(1, a.repeat + 1):
            for shape in SHAPES:
                for n in sorted(set(ours_sizes) | set(fast_cfy)):
                    if n in ours_sizes:
                        self.ours_plan(shape, n, rep, a.repeat)
                    if n in fast_cfy:
                        self.cfy_plan(shape, n, rep, a.repeat, RUN_TIMEOUT)

        if slow_cfy:
            print(f"== plan: Cloudify at {slow_cfy} ({a.cloudify_slow_repeat} run(s) each)", flush=True)
            for rep in range(1, a.cloudify_slow_repeat + 1):
                for shape in SHAPES:
                    for n in slow_cfy:
                        self.cfy_plan(shape, n, rep, a.cloudify_slow_repeat, RUN_TIMEOUT)

        print(f"== engine: {', '.join(ENGINE_CASES)} (ours and Cloudify interleaved)", flush=True)
        for case in ENGINE_CASES:
            runs = max(a.repeat, SLEEP_MIN_REPEAT) if engine_bench.CASES[case][2] else a.repeat
            for rep in range(1, runs + 1):
                self.ours_engine(case, rep, runs)
                self.cfy_engine(case, rep, runs)

        print("== day 2: plan -d and a no-change update of a 1,000-node deployment", flush=True)
        day2 = run_child([sys.executable, str(HERE / "day2_bench.py"), "--json", "--repeat", str(a.repeat)],
                         RUN_TIMEOUT)
        self.day2 = day2.get("day2") or [day2]
        for r in self.day2:
            print(f"  {r.get('case')}: {r.get('median_s', r.get('error'))}", flush=True)
        self.save()

        print("== plugins: start-up of plan/status with every plugin; AWS, 50 instances on moto", flush=True)
        self.plugins["cli"] = cli_bench.run(max(a.repeat, 5))
        for r in self.plugins["cli"]:
            print(f"  {r['case']:16} median {r['median_s'] * 1000:.0f} ms", flush=True)
        aws = run_child([sys.executable, str(HERE / "aws_bench.py"), "--json", "--repeat", str(a.repeat)], RUN_TIMEOUT)
        self.plugins["aws"] = aws.get("aws") or [aws]
        for r in self.plugins["aws"]:
            print(f"  aws: {r}", flush=True)
        self.save()

        print("== workers: 1,000 nodes x 3 operations of 200 ms on 1, 2, 4 Celery workers; overhead per operation",
              flush=True)
        remote = run_child([sys.executable, str(HERE / "remote_bench.py"), "--json-stdout",
                            *(["--nodes", "200"] if a.quick else [])], RUN_TIMEOUT * 2)
        self.plugins["remote"] = remote
        for r in remote.get("rows", []):
            print(f"  {r['case']:9} {r['executor']:7} workers={r['workers']} wall {r['wall']:.2f} s", flush=True)
        self.save()

        print("== state: 100 deployments from 10 CLI processes at once, on PostgreSQL and on SQLite", flush=True)
        for store in ("postgres", "sqlite"):
            row = run_child([sys.executable, str(HERE / "postgres_bench.py"), "--json", "--store", store], RUN_TIMEOUT)
            self.state.append(row)
            print(f"  {store}: " + (f"install {row['install_wall_s']} s, uninstall {row['uninstall_wall_s']} s, "
                                    f"ok: {row['ok']}" if "error" not in row else str(row)), flush=True)
        self.save()

        if capped_cfy and a.cloudify_timeout > 0:
            print(f"== plan: Cloudify at {capped_cfy}, once, capped at {a.cloudify_timeout:.0f} s", flush=True)
            for shape in SHAPES:
                for n in capped_cfy:
                    self.cfy_plan(shape, n, 1, 1, a.cloudify_timeout)

    # -- output --------------------------------------------------------------------

    def save(self, final: bool = False) -> None:
        data = {"meta": {**self.meta, "load_average_end": load_average(),
                         "suite_wall_s": round(time.perf_counter() - self.t0, 1), "complete": final},
                "rows": self.rows, "plugins": self.plugins, "state": self.state, "day2": self.day2}
        tmp = self.out / "latest.json.tmp"
        tmp.write_text(json.dumps(data, indent=1) + "\n")
        tmp.replace(self.out / "latest.json")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs per case (default 3)")
    ap.add_argument("--cloudify-slow-repeat", type=int, default=1,
                    help=f"runs of Cloudify's plans of >= {CFY_SLOW_NODES} nodes (default 1)")
    ap.add_argument("--cloudify-timeout", type=float, default=120.0,
                    help=f"cap on Cloudify's plans of >= {CFY_TIMEOUT_NODES} nodes, seconds; 0 skips them "
                         "(default 120; ~400 s flat / ~800 s chain would let them finish)")
    ap.add_argument("--our-sizes", default=",".join(map(str, OUR_PLAN_SIZES)))
    ap.add_argument("--cloudify-sizes", default=",".join(map(str, CFY_PLAN_SIZES)))
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 1 run per case, no Cloudify plans beyond 1,000 nodes")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--workdir", help="where generated blueprints go (default: a temporary directory)")
    args = ap.parse_args(argv)
    args.our_sizes = [int(x) for x in args.our_sizes.split(",") if x]
    args.cloudify_sizes = [int(x) for x in args.cloudify_sizes.split(",") if x]
    if args.quick:
        args.repeat = 1
        args.cloudify_sizes = [n for n in args.cloudify_sizes if n < CFY_TIMEOUT_NODES]
    return args


def main(argv: list[str] | None = None) -> None:
    import tempfile

    args = parse_args(argv)
    cfy = ensure_cloudify()
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        args.workdir = args.workdir or tmp
        suite = Suite(args)
        suite.meta = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(suite.started)),
            "machine": machine_info(),
            "orchestrator_versions": _versions(("orchestrator", "pluggy", "PyYAML", "yaml-rs", "attrs")),
            "cloudify_versions": cfy,
            "git": _git(),
            "settings": {"repeat": args.repeat, "cloudify_slow_repeat": args.cloudify_slow_repeat,
                         "cloudify_timeout_s": args.cloudify_timeout, "our_plan_sizes": args.our_sizes,
                         "cloudify_plan_sizes": args.cloudify_sizes, "engine_cases": {
                             c: dict(zip(("shape", "nodes", "sleep_s", "concurrency"), engine_bench.CASES[c],
                                         strict=True)) for c in ENGINE_CASES},
                         "sleep_min_repeat": SLEEP_MIN_REPEAT, "quick": args.quick},
        }
        m = suite.meta["machine"]
        print(f"machine: {m['cpu_model']}, {m['cores']} cores, load average {m['load_average']}; "
              f"Python {m['python']}; Cloudify {cfy['cloudify-common']} on Python {cfy['python']}", flush=True)
        suite.go()
        suite.save(final=True)
    written = report.render(suite.out / "latest.json", suite.out)
    print(f"suite took {time.perf_counter() - suite.t0:.0f} s; wrote " + ", ".join(str(p) for p in written))
    print((suite.out / "latest.md").read_text().split("## Results", 1)[0])


if __name__ == "__main__":
    main()
