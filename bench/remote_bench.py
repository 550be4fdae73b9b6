"""Hook calls on Celery workers: scaling with workers, and the engine's overhead per operation.

    python bench/remote_bench.py [--nodes 1000] [--sleep 0.2] [--workers 1,2,4] [--state sqlite|URL]

* scaling: NODES independent nodes x 3 operations sleeping SLEEP seconds (long enough that
  2 cores measure scheduling, not CPU); install wall time with the local executor
  (concurrency 10) and with 1, 2, 4 workers of concurrency 10 each (the CLI's concurrency
  10 x workers). Ideal: NODES x 3 x SLEEP / (10 x workers).
* overhead: the same nodes with no-op operations, local threads vs Celery workers; wall
  time per operation, and where it goes (CLI and worker CPU seconds).

Real components: Debian's redis-server on 127.0.0.1 (testenv), worker processes started
with ``orchestrator worker``, the CLI as a user runs it. Prints a Markdown table; with
--json FILE also writes the rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from testenv.dists import write_distribution  # noqa: E402
from testenv.redis_server import start_redis  # noqa: E402

PLUGIN = '''
import time
from orchestrator import hookimpl

@hookimpl
def register_types():
    return {"node_types": {"rbench.Node": {"derived_from": "orchestrator.nodes.Root",
                                          "properties": {"sleep": {"type": "float", "default": 0.0}}}}}

def _op(ctx):
    seconds = ctx.node.properties["sleep"]
    if seconds:
        time.sleep(seconds)

@hookimpl
def create(ctx): _op(ctx)

@hookimpl
def configure(ctx): _op(ctx)

@hookimpl
def start(ctx): _op(ctx)
'''


def blueprint(nodes: int, sleep: float) -> str:
    return (f"node_templates:\n  n:\n    type: rbench.Node\n    instances: {nodes}\n"
            f"    properties: {{sleep: {sleep}}}\n")


class Bench:
    def __init__(self, work: Path, state: str) -> None:
        self.work = work
        self.state = state
        dist = write_distribution(work / "dist", "orchestrator-rbench", {"rbench": "rbench_plugin"},
                                  {"rbench_plugin.py": PLUGIN})
        self.env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(dist), os.environ.get(
            "PYTHONPATH", "")]))}
        self.redis = start_redis(work / "redis")
        self.env["ORCHESTRATOR_BROKER"] = self.redis.url
        self.workers: list[subprocess.Popen[bytes]] = []

    def start_workers(self, count: int, concurrency: int = 10) -> None:
        self.stop_workers()
        from orchestrator.remote.app import make_app

        for i in range(count):
            log = open(self.work / f"worker{i}.log", "wb")  # noqa: SIM115 - lives with the worker
            self.workers.append(subprocess.Popen(
                [sys.executable, "-m", "orchestrator", "worker", "--concurrency", str(concurrency), "--name", f"b{i}"],
                env=self.env, cwd=self.work, stdout=log, stderr=subprocess.STDOUT))
        app = make_app(self.redis.url)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            replies = app.control.ping(timeout=0.5) or []
            if len(replies) >= count:
                return
        raise RuntimeError("workers did not answer")

    def stop_workers(self) -> float:
        """Stop the workers; their CPU seconds."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        for proc in self.workers:
            proc.terminate()
        for proc in self.workers:
            proc.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.workers = []
        return (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)

    def install(self, nodes: int, sleep: float, executor: str, concurrency: int) -> dict[str, Any]:
        (self.work / "bp.yaml").write_text(blueprint(nodes, sleep))
        state = self.state
        if not state.startswith("postgresql://"):
            state = str(self.work / f"state-{time.monotonic_ns()}.db")
        deployment = f"d{time.monotonic_ns()}"
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "orchestrator", "install", "bp.yaml", "-d", deployment,
                               "--state", state, "--executor", executor, "--concurrency", str(concurrency)],
                              env=self.env, cwd=self.work, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode != 0:
            raise RuntimeError(f"install failed: {done.stderr[-2000:]}")
        return {"wall": wall, "cli_cpu": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)}

    def close(self) -> None:
        self.stop_workers()
        self.redis.stop()


def scaling(bench: Bench, nodes: int, sleep: float, counts: list[int]) -> list[dict[str, Any]]:
    rows = []
    ideal = nodes * 3 * sleep / 10
    got = bench.install(nodes, sleep, "local", 10)
    rows.append({"case": "scaling", "executor": "local", "workers": 0, "ideal": ideal, **got})
    for count in counts:
        bench.start_workers(count)
        got = bench.install(nodes, sleep, "celery", 10 * count)
        got["worker_cpu"] = bench.stop_workers()
        ideal = nodes * 3 * sleep / (10 * count)
        rows.append({"case": "scaling", "executor": "celery", "workers": count, "ideal": ideal, **got})
    return rows


def overhead(bench: Bench, nodes: int) -> list[dict[str, Any]]:
    rows = []
    got = bench.install(nodes, 0.0, "local", 10)
    rows.append({"case": "overhead", "executor": "local", "workers": 0, "ops": nodes * 3, **got})
    bench.start_workers(1)
    got = bench.install(nodes, 0.0, "celery", 10)
    got["worker_cpu"] = bench.stop_workers()
    rows.append({"case": "overhead", "executor": "celery", "workers": 1, "ops": nodes * 3, **got})
    return rows


def table(rows: list[dict[str, Any]], state: str) -> str:
    lines = [f"State: {state}", "", "| case | executor | workers | wall s | ideal s | over ideal | CLI CPU s | "
             "worker CPU s | per op ms |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ideal = r.get("ideal")
        over = f"{(r['wall'] / ideal - 1) * 100:+.1f} %" if ideal else ""
        per_op = f"{r['wall'] / r['ops'] * 1000:.2f}" if r.get("ops") else ""
        lines.append(f"| {r['case']} | {r['executor']} | {r['workers'] or ''} | {r['wall']:.2f} | "
                     f"{'' if ideal is None else f'{ideal:.1f}'} | {over} | {r['cli_cpu']:.1f} | "
                     f"{r.get('worker_cpu', 0):.1f} | {per_op} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--sleep", type=float, default=0.2)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--state", default="sqlite",
                        help="sqlite (a fresh file per run), postgres (a server started here) or a postgresql:// URL")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--json", default=None, help="also write the rows to this file")
    parser.add_argument("--json-stdout", action="store_true", help="end with one JSON line (for bench/run.py)")
    args = parser.parse_args(argv)
    server = None
    if args.state == "postgres":
        from testenv.postgres import start_postgres

        server = start_postgres(die_with_parent=True)
        args.state = server.create_database("remote_bench")
    with tempfile.TemporaryDirectory(prefix="remote-bench-") as tmp:
        bench = Bench(Path(tmp), args.state)
        try:
            rows = [] if args.skip_scaling else scaling(bench, args.nodes, args.sleep,
                                                        [int(w) for w in args.workers.split(",")])
            rows += overhead(bench, args.nodes)
        finally:
            bench.close()
            if server is not None:
                server.stop()
    state = "PostgreSQL" if args.state.startswith("postgresql") else "SQLite"
    print(table(rows, state))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=2))
    if args.json_stdout:
        print(json.dumps({"rows": rows, "state": state}))


if __name__ == "__main__":
    main()
