"""Many CLIs on one PostgreSQL state: 100 deployments installed from 10 CLI processes at once.

    python bench/postgres_bench.py [--deployments 100] [--clis 10] [--store postgres|sqlite] [--json]

Starts Debian's PostgreSQL (``testenv.postgres``, fsync off: this measures contention, not
disks), then runs ``orchestrator install`` of each deployment as its own process, 10 at a
time, each "CLI" with its own ``ORCHESTRATOR_HOST_ID``; then all 10 at once on one
deployment (its lock is contended: each either runs, or is refused: busy, or "changed while this command was getting ready");
then ``uninstall`` of every deployment, 10 at a time. A deployment is 1 ``db`` node and 5
``app`` instances connected to it: 6 instances, 23 operations, and every ``establish``
writes a key of the shared ``db`` instance's runtime properties (concurrent merges).

Afterwards it checks: no lost update (every instance has the key each of its operations
wrote, ``db`` one key per app), every execution ended, every lock released, no deadlock
(``pg_stat_database.deadlocks`` and no failed CLI but "busy" refusals). Reports wall times,
the workflows' own time (what each CLI prints: start-up excluded) and the CPU all CLIs used.
``--store sqlite`` runs the same on one SQLite file, for comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))  # testenv

from testenv.dists import write_distribution  # noqa: E402
from testenv.postgres import PostgresServer, start_postgres  # noqa: E402

APPS = 5
BLUEPRINT = f"""
node_templates:
  db: {{type: bench.Counted}}
  app:
    type: bench.Counted
    instances: {APPS}
    relationships: [{{type: bench.connected_to, target: db}}]
"""
NODE_OPS = ("create", "configure", "start")

PLUGIN = '''
"""Operations that each write one runtime property: what a lost update would lose."""
import os
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"bench.Counted": {"derived_from": "orchestrator.nodes.Root"}},
            "relationships": {"bench.connected_to": {"derived_from": "orchestrator.relationships.connected_to"}}}


def _node(op):
    def hook(ctx):
        ctx.instance.runtime_properties[op] = os.getpid()
    hook.__name__ = op
    return hookimpl(hook)


create, configure, start = _node("create"), _node("configure"), _node("start")


@hookimpl
def establish(ctx):
    ctx.target.instance.runtime_properties["peer_" + ctx.source.instance.id] = os.getpid()
'''


def _cli(argv: list[str], cwd: Path, env: dict[str, str]) -> dict[str, Any]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "orchestrator", *argv], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)
    took = re.search(r"succeeded in ([0-9.]+)s", done.stdout)
    return {"argv": argv, "code": done.returncode, "stderr": done.stderr.strip()[-500:],
            "wall_s": time.perf_counter() - started, "workflow_s": float(took.group(1)) if took else None}


def _wave(jobs: list[list[str]], clis: int, cwd: Path, env: dict[str, str]) -> tuple[float, list[dict[str, Any]]]:
    """Run every job as its own CLI process, ``clis`` at a time, each slot a host of its own."""
    def run(item: tuple[int, list[str]]) -> dict[str, Any]:
        n, argv = item
        return _cli(argv, cwd, {**env, "ORCHESTRATOR_HOST_ID": f"bench-host-{n % clis}"})

    started = time.perf_counter()
    with ThreadPoolExecutor(clis) as pool:
        results = list(pool.map(run, enumerate(jobs)))
    return time.perf_counter() - started, results


def _check(url: str, names: list[str], installed: bool) -> list[str]:
    """What went wrong in the state (an empty list: nothing)."""
    from orchestrator.state import open_store

    problems: list[str] = []
    store = open_store(url, create=False)
    try:
        for name in names:
            rows = store.instances(name)
            lock = store.lock(name)
            if lock is not None:
                problems.append(f"{name}: still locked by execution {lock.execution}")
            unended = [e for e in store.executions(name) if e[2] == "started"]
            if unended:
                problems.append(f"{name}: executions never ended: {unended}")
            if not installed:
                if any(r.state != "deleted" for r in rows.values()):
                    problems.append(f"{name}: not all deleted: {sorted((i, r.state) for i, r in rows.items())}")
                continue
            if len(rows) != APPS + 1 or any(r.state != "started" for r in rows.values()):
                problems.append(f"{name}: not all started: {sorted((i, r.state) for i, r in rows.items())}")
            for iid, row in rows.items():
                missing = [op for op in NODE_OPS if op not in row.runtime]
                if iid.startswith("db"):
                    peers = {k for k in row.runtime if k.startswith("peer_")}
                    if len(peers) != APPS:
                        missing.append(f"{APPS - len(peers)} peer keys")
                if missing:
                    problems.append(f"{name}/{iid}: lost update: {missing} missing from {sorted(row.runtime)}")
    finally:
        store.close()
    return problems


def _deadlocks(server: PostgresServer | None, database: str) -> int:
    if server is None:
        return 0
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as db:
        row = db.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (database,)).fetchone()
    return int(row[0]) if row else 0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(deployments: int = 100, clis: int = 10, store: str = "postgres") -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="orch-pg-bench-"))
    server = start_postgres(die_with_parent=True) if store == "postgres" else None
    try:
        dist = write_distribution(tmp / "dist", "orchestrator-bench-counted", {"counted": "bench_counted"},
                                  {"bench_counted.py": PLUGIN})
        url = server.create_database("bench") if server else str(tmp / "state.db")
        env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(dist), env.get("PYTHONPATH", "")]))
        env["ORCHESTRATOR_STATE"] = url
        (tmp / "bp.yaml").write_text(BLUEPRINT)
        names = [f"dep-{n:03d}" for n in range(deployments)]

        cpu = _children_cpu()
        install_s, installs = _wave([["install", "bp.yaml", "-d", name] for name in names], clis, tmp, env)
        install_cpu = _children_cpu() - cpu
        failures = [r for r in installs if r["code"] != 0]
        problems = _check(url, names, installed=True)

        contended_s, contended = _wave([["install", "bp.yaml", "-d", names[0]]] * clis, clis, tmp, env)
        # refused: busy (another CLI holds the lock), or it ran between this one's planning and its start
        busy = [r for r in contended if r["code"] in (1, 2) and ("is busy" in r["stderr"] or "run it again"
                                                                  in r["stderr"])]
        failures += [r for r in contended if r["code"] != 0 and r not in busy]
        problems += _check(url, names[:1], installed=True)

        uninstall_s, uninstalls = _wave([["uninstall", "-d", name] for name in names], clis, tmp, env)
        failures += [r for r in uninstalls if r["code"] != 0]
        problems += _check(url, names, installed=False)
        deadlocks = _deadlocks(server, "bench")
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    walls = [r["wall_s"] for r in installs]
    workflows = [r["workflow_s"] for r in installs if r["workflow_s"] is not None]
    return {
        "store": store, "deployments": deployments, "clis": clis, "instances_per_deployment": APPS + 1,
        "hook_calls_per_install": 3 * (APPS + 1) + APPS,
        "install_wall_s": round(install_s, 2), "install_cpu_s": round(install_cpu, 1),
        "uninstall_wall_s": round(uninstall_s, 2),
        "install_cli_median_s": round(statistics.median(walls), 3), "install_cli_max_s": round(max(walls), 3),
        "install_workflow_median_s": round(statistics.median(workflows), 3) if workflows else None,
        "install_workflow_max_s": round(max(workflows), 3) if workflows else None,
        "contended_wall_s": round(contended_s, 2), "contended_refused": len(busy),
        "contended_ran": sum(r["code"] == 0 for r in contended),
        "failures": [{"argv": r["argv"], "code": r["code"], "stderr": r["stderr"]} for r in failures],
        "problems": problems, "deadlocks": deadlocks,
        "ok": not failures and not problems and deadlocks == 0,
    }


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deployments", type=int, default=100)
    ap.add_argument("--clis", type=int, default=10)
    ap.add_argument("--store", choices=("postgres", "sqlite"), default="postgres")
    ap.add_argument("--json", action="store_true", help="one JSON line (for bench/run.py)")
    args = ap.parse_args(argv)
    result = run(args.deployments, args.clis, args.store)
    if args.json:
        print(json.dumps(result))
    else:
        r = result
        print(f"{r['deployments']} deployments ({r['instances_per_deployment']} instances, "
              f"{r['hook_calls_per_install']} hook calls each) from {r['clis']} CLI processes at once, "
              f"state in {r['store']}:")
        print(f"  install   {r['install_wall_s']:6.2f} s wall, {r['install_cpu_s']} s CPU in the CLIs (one CLI: "
              f"median {r['install_cli_median_s']} s, max {r['install_cli_max_s']} s; its workflow: median "
              f"{r['install_workflow_median_s']} s, max {r['install_workflow_max_s']} s)")
        print(f"  contended {r['contended_wall_s']:6.2f} s: {r['clis']} CLIs on one deployment, "
              f"{r['contended_ran']} ran, {r['contended_refused']} refused (busy, or changed meanwhile)")
        print(f"  uninstall {result['uninstall_wall_s']:6.2f} s wall")
        print(f"  lost updates / unreleased locks: {len(result['problems'])}; deadlocks: {result['deadlocks']}; "
              f"failed CLIs: {len(result['failures'])}")
        for line in result["problems"][:10] + [json.dumps(f) for f in result["failures"][:5]]:
            print("   ", line)
    if not result["ok"] and not args.json:  # with --json the report marks the goal missed
        raise SystemExit(1)


if __name__ == "__main__":
    main()
