"""Where our engine's time per operation goes (CPU time; writes bench/results/profile_raw.md).

    python bench/profile_engine.py [--nodes 1000] [--out bench/results/profile_raw.md]

Four views of install + uninstall of N flat no-op nodes (the engine_bench plugin):
  1. yappi, CPU clock, all threads: the real run, worker threads included;
  2. cProfile with a CPU timer on ``Runner._install_instance`` / ``_uninstall_instance``
     called directly in the main thread (cProfile sees only the thread it runs in);
  3. micro-timings of the building blocks of one operation, in isolation;
  4. the 50 ms case's timeline from the events table: how long each wave of 50
     operations takes to start, i.e. what the engine adds between sleeps.
(The what-if variants that once prototyped fixes here are gone: those fixes shipped or died.)
``bench/results/profile.md`` is the hand-written analysis of this output.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sqlite3
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import noop_plugin  # noqa: E402
from generate import generate  # noqa: E402

from orchestrator.deployments import Orchestrator  # noqa: E402
from orchestrator.engine import workflows  # noqa: E402
from orchestrator.engine.dispatch import Dispatcher  # noqa: E402
from orchestrator.engine.events import EventSink, Masker  # noqa: E402
from orchestrator.engine.journal import event_row  # noqa: E402
from orchestrator.engine.options import Options  # noqa: E402
from orchestrator.engine.runner import Runner  # noqa: E402
from orchestrator.engine.steps import StepRunner, _merge_runtime  # noqa: E402
from orchestrator.plugins import get_plugin_manager  # noqa: E402

TOP = 25


def tmpdir(**kwargs: Any) -> Path:
    """A temporary directory removed when this process exits (hundreds are made per run)."""
    import atexit
    import shutil

    path = Path(tempfile.mkdtemp(prefix="orch-profile-", **kwargs))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def setup(shape: str, n: int, sleep: float = 0.0) -> tuple[Orchestrator, Path]:
    noop_plugin.SLEEP = sleep
    tmp = tmpdir()
    path = tmp / "bp.yaml"
    path.write_text(generate(shape, n, base="bench.Noop"))
    pm = get_plugin_manager([noop_plugin], entry_points=False, env={})
    return Orchestrator(pm=pm, state_path=tmp / "state.db"), path


def short(module: str, name: str, lineno: int) -> str:
    module = module.replace(str(Path(sys.prefix)), "<venv>")
    for marker in ("/src/", "/site-packages/", "/lib/python3"):
        if marker in module:
            module = module.split(marker, 1)[1]
            break
    return f"{name} ({module}:{lineno})"


# -- 1. yappi ----------------------------------------------------------------------------


def yappi_view(n: int, concurrency: int) -> tuple[str, dict[str, float]]:
    import yappi

    orch, path = setup("flat", n)
    options = Options(concurrency=concurrency, retries=0)
    prepared = orch.prepare_install(path, deployment="bench")
    yappi.set_clock_type("cpu")
    yappi.clear_stats()
    cpu0 = time.process_time()
    yappi.start(builtins=True, profile_threads=True)
    a = prepared.run(options)
    b = orch.prepare_uninstall("bench").run(options)
    yappi.stop()
    cpu = time.process_time() - cpu0
    ops = a.operations + b.operations
    stats = yappi.get_func_stats()
    total = sum(s.tsub for s in stats)
    rows = sorted(stats, key=lambda s: s.tsub, reverse=True)[:TOP]
    out = [f"Install + uninstall of {n} flat no-op nodes, concurrency {concurrency}: {ops} operations, "
           f"{cpu:.3f} s process CPU ({cpu / ops * 1e6:.0f} µs/op; with yappi's own overhead), "
           f"{total:.3f} s attributed by yappi.", "",
           "Top functions by **own** CPU time (all threads):", "",
           "| own CPU % | own µs/op | calls/op | function |", "| ---: | ---: | ---: | --- |"]
    for s in rows:
        out.append(f"| {s.tsub / total * 100:.1f} | {s.tsub / ops * 1e6:.1f} | {s.ncall / ops:.2f} | "
                   f"`{short(s.module, s.name, s.lineno)}` |")
    # Inclusive time of the functions that make up one operation.
    wanted = {
        "Runner._run_steps": "whole instance (all its operations)",
        "Runner._run_step": "one operation, incl. the hook call",
        "Runner._flush": "state write + publish",
        "StateStore.record": "SQLite transaction (UPDATE + INSERT events + COMMIT)",
        "Connection.execute": "sqlite3 execute (any)",
        "Connection.executemany": "sqlite3 executemany (events)",
        "ContextFactory.operation": "building ctx",
        "InstanceContext.__init__": "ctx.instance (2 json.loads of runtime props)",
        "EventSink.make": "making events",
        "_HookCaller.__call__": "pluggy hook call (the no-op plugin inside)",
        "_SubsetHookCaller.__call__": "pluggy subset hook call",
        "Runner._merge_runtime": "runtime property merge check",
        "_Scheduler.finish_and_take": "scheduler (lock, graphlib)",
        "dumps": "json.dumps (ops dict)",
    }
    incl: dict[str, float] = {}
    by_name: dict[str, float] = defaultdict(float)
    for s in stats:
        if s.name in wanted:
            by_name[s.name] += s.ttot
    out += ["", "Inclusive CPU time of the pieces of one operation:", "",
            "| inclusive µs/op | % of total | function | what |", "| ---: | ---: | --- | --- |"]
    for name, what in wanted.items():
        if name in by_name:
            incl[name] = by_name[name] / ops * 1e6
            out.append(f"| {incl[name]:.1f} | {by_name[name] / total * 100:.1f} | `{name}` | {what} |")
    thread_stats = yappi.get_thread_stats()
    out += ["", f"Threads: {len(thread_stats)}; CPU per thread (s): "
            + ", ".join(f"{t.name} {t.ttot:.3f}" for t in sorted(thread_stats, key=lambda t: -t.ttot)[:12])]
    yappi.clear_stats()
    orch.close()
    return "\n".join(out), incl


# -- 2. cProfile on the main thread -------------------------------------------------------


def cprofile_view(n: int) -> str:
    orch, path = setup("flat", n)
    prepared = orch.prepare_install(path, deployment="bench")
    plan, store = prepared.plan, orch.store

    def runner(workflow: str) -> tuple[Runner, StepRunner, int]:
        execution = store.start_execution("bench", workflow, prepare=prepared.before if workflow == "install"
                                          else None)
        sink = EventSink(store, "bench", execution, Masker())
        r = Runner(store=store, deployment="bench", dispatcher=Dispatcher(orch.pm), sink=sink,
                   options=Options(concurrency=1, retries=0), secrets={}, plans=[plan])
        phase = workflows.WORKFLOWS[workflow](plan).phases[0]
        return r, StepRunner(r.ex, phase, r.contexts(plan)), execution

    prof = cProfile.Profile(time.process_time)
    r, steps, execution = runner("install")
    for rec in r.records.values():
        rec.ops.clear()
    insts = list(plan.instances.values())
    cpu0 = time.process_time()
    prof.enable()
    with r.ex.lock:
        for inst in insts:
            assert steps.run(inst)
    prof.disable()
    cpu_install = time.process_time() - cpu0
    store.end_execution(execution, "succeeded")
    ops_install = r.ex.operations
    r, steps, execution = runner("uninstall")
    cpu0 = time.process_time()
    prof.enable()
    with r.ex.lock:
        for inst in reversed(insts):
            assert steps.run(inst)
    prof.disable()
    cpu_uninstall = time.process_time() - cpu0
    store.end_execution(execution, "succeeded")
    ops = ops_install + r.ex.operations
    cpu = cpu_install + cpu_uninstall

    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    total = st.total_tt
    entries = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    out = [f"`StepRunner.run` of install then of uninstall for each of {n} flat no-op nodes, in the main "
           f"thread (no worker threads, no scheduler): {ops} operations, {cpu:.3f} s CPU under the profiler "
           f"({cpu / ops * 1e6:.0f} µs/op with cProfile's overhead).", "",
           "| own CPU % | own µs/op | cumulative µs/op | calls/op | function |", "| ---: | ---: | ---: | ---: | --- |"]
    for (file, line, name), (_cc, nc, tt, ct, _callers) in entries:
        out.append(f"| {tt / total * 100:.1f} | {tt / ops * 1e6:.1f} | {ct / ops * 1e6:.1f} | {nc / ops:.2f} | "
                   f"`{short(file, name, line)}` |")
    orch.close()
    return "\n".join(out)


# -- 3. micro-timings -----------------------------------------------------------------------


def micro_view() -> str:
    """The building blocks of one operation, each timed alone (CPU µs per call)."""
    orch, path = setup("flat", 10)
    prepared = orch.prepare_install(path, deployment="bench")
    plan, store = prepared.plan, orch.store
    execution = store.start_execution("bench", "install", prepare=prepared.before)
    sink = EventSink(store, "bench", execution, Masker())
    r = Runner(store=store, deployment="bench", dispatcher=Dispatcher(orch.pm), sink=sink,
               options=Options(concurrency=1, retries=0), secrets={}, plans=[plan])
    contexts = r.contexts(plan)
    inst = next(iter(plan.instances.values()))
    node = plan.nodes[inst.node]
    rec = r.records[inst.id]
    caller = r.ex.dispatcher.caller(node.owner, "create")
    ev = [event_row(sink.make("operation_started", "create started", rec.id, "create", node.owner))]
    ops_json = json.dumps({"create": "started"})

    def bench(fn: Any, n: int = 3000) -> float:
        fn()
        t0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t0) / n * 1e6

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (a)")
    ctx = contexts.operation(inst, "create", 0, None, node.owner)
    rows = [
        ("`StateStore.record` (1 UPDATE + 1 event INSERT + COMMIT, WAL, synchronous=NORMAL)",
         lambda: store.record("bench", rec.id, "creating", ops_json, None, ev)),
        ("`StateStore.record` with 2 events (a success riding with the next start)",
         lambda: store.record("bench", rec.id, "creating", ops_json, None, ev * 2)),
        ("`StateStore.record` with no event (the instance UPDATE alone)",
         lambda: store.record("bench", rec.id, "creating", ops_json, None, [])),
        ("bare `BEGIN; COMMIT` on the state file", lambda: (store._db.execute("BEGIN IMMEDIATE"),
                                                             store._db.execute("COMMIT"))),
        ("bare `BEGIN; INSERT; COMMIT` on an in-memory database",
         lambda: (conn.execute("BEGIN"), conn.execute("INSERT INTO t VALUES (1)"), conn.execute("COMMIT"))),
        ("`EventSink.make` (Event + time.time + masker)",
         lambda: sink.make("operation_started", "create started", rec.id, "create", node.owner)),
        ("`ContextFactory.operation` (OperationContext, InstanceContext, logger, closures)",
         lambda: contexts.operation(inst, "create", 0, None, node.owner)),
        ("pluggy: the no-op `create` hook through the subset caller", lambda: caller(ctx=ctx)),
        ("`json.dumps` of the ops dict", lambda: json.dumps(rec.ops)),
        ("`steps._merge_runtime` (nothing changed)", lambda: _merge_runtime(ctx)),
    ]
    out = ["| CPU µs per call | building block |", "| ---: | --- |"]
    for what, fn in rows:
        out.append(f"| {bench(fn):.1f} | {what} |")
    store.end_execution(execution, "succeeded")
    orch.close()
    return "\n".join(out)


# -- 4. the 50 ms case's timeline ------------------------------------------------------------


def sleep_timeline(runs: int = 3) -> str:
    out = ["Per run: install wall time, then for each wave of operations (50 at a time) the spread between the "
           "first and the last `operation_started` event of that wave, i.e. how long the engine takes to get "
           "50 sleeping operations going again.", ""]
    for run in range(runs):
        orch, path = setup("flat", 100, 0.05)
        options = Options(concurrency=50, retries=0)
        prepared = orch.prepare_install(path, deployment="bench")
        cpu0, t0 = time.process_time(), time.time()
        res = prepared.run(options)
        wall, cpu = time.time() - t0, time.process_time() - cpu0
        rows = orch.store._db.execute(
            "SELECT ts, instance, operation FROM events WHERE type = 'operation_started' AND execution = ? "
            "ORDER BY ts", (res.execution,)).fetchall()
        by_op: dict[str, list[float]] = defaultdict(list)
        for ts, _inst, op in rows:
            by_op[op].append(ts - t0)
        parts = []
        for op in ("create", "configure", "start"):
            ts = sorted(by_op[op])
            for wave, chunk in enumerate((ts[:50], ts[50:]), 1):
                if chunk:
                    parts.append(f"{op}#{wave} {chunk[0] * 1000:.0f}→{chunk[-1] * 1000:.0f} ms "
                                 f"(spread {(chunk[-1] - chunk[0]) * 1000:.1f})")
        out.append(f"- run {run + 1}: install {wall:.3f} s (+{(wall / 0.30 - 1) * 100:.0f} % over 0.30 s), "
                   f"CPU {cpu:.3f} s = {cpu / res.operations * 1e6:.0f} µs per operation; " + "; ".join(parts))
        orch.close()
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=10)
    ap.add_argument("--out", default=str(HERE / "results" / "profile_raw.md"))
    args = ap.parse_args()
    import os
    import platform

    parts = ["# Engine profile (raw output of `bench/profile_engine.py`)", "",
             f"{time.strftime('%Y-%m-%d %H:%M:%S')}, Python {platform.python_version()}, load average "
             f"{', '.join(f'{x:.2f}' for x in os.getloadavg())} (shared machine). CPU-time clocks throughout.", ""]
    print("1/4 yappi (all threads) ...", flush=True)
    text, _ = yappi_view(args.nodes, args.concurrency)
    parts += ["## 1. yappi, CPU clock, all threads (the real run)", "", text, ""]
    print("2/4 cProfile (main thread proxy) ...", flush=True)
    parts += ["## 2. cProfile, CPU timer, `_install_instance` / `_uninstall_instance` in the main thread", "",
              cprofile_view(args.nodes), ""]
    print("3/4 micro-timings ...", flush=True)
    parts += ["## 3. Building blocks of one operation, timed alone", "", micro_view(), ""]
    print("4/4 50 ms case timeline ...", flush=True)
    parts += ["## 4. The 50 ms case: what happens between the sleeps", "", sleep_timeline(), ""]
    Path(args.out).write_text("\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
