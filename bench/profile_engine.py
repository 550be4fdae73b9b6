"""Where our engine's time per operation goes (CPU time; writes bench/results/profile_raw.md).

    python bench/profile_engine.py [--nodes 1000] [--out bench/results/profile_raw.md]

Five views of install + uninstall of N flat no-op nodes (the engine_bench plugin):
  1. yappi, CPU clock, all threads: the real run, worker threads included;
  2. cProfile with a CPU timer on ``Runner._install_instance`` / ``_uninstall_instance``
     called directly in the main thread (cProfile sees only the thread it runs in);
  3. micro-timings of the building blocks of one operation, in isolation;
  4. the 50 ms case's timeline from the events table: how long each wave of 50
     operations takes to start, i.e. what the engine adds between sleeps;
  5. what-if variants without a profiler: no state store, main thread only, one CPU,
     SQLite tuning, and prototypes of fixes as monkeypatches in this process (nothing in
     src/ changes): deferred events, an engine lock, a scheduler fix.
``bench/results/profile.md`` is the hand-written analysis of this output.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import random
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
from orchestrator.engine.dispatch import Dispatcher  # noqa: E402
from orchestrator.engine.events import EventSink, Masker  # noqa: E402
from orchestrator.engine.runner import Options, Runner  # noqa: E402
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
        "Runner._context": "building ctx",
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

    def runner(workflow: str) -> Runner:
        execution = store.start_execution("bench", workflow)
        sink = EventSink(store, "bench", execution, Masker())
        return Runner(plan=plan, store=store, deployment="bench", dispatcher=Dispatcher(orch.pm), sink=sink,
                      options=Options(concurrency=1, retries=0), secrets={}), execution

    prof = cProfile.Profile(time.process_time)
    r, execution = runner("install")
    for rec in r.records.values():
        rec.ops.clear()
    insts = list(plan.instances.values())
    cpu0 = time.process_time()
    prof.enable()
    for inst in insts:
        assert r._install_instance(inst)
    prof.disable()
    cpu_install = time.process_time() - cpu0
    store.end_execution(execution, "succeeded")
    ops_install = r.operations
    r, execution = runner("uninstall")
    cpu0 = time.process_time()
    prof.enable()
    for inst in reversed(insts):
        assert r._uninstall_instance(inst)
    prof.disable()
    cpu_uninstall = time.process_time() - cpu0
    store.end_execution(execution, "succeeded")
    ops = ops_install + r.operations
    cpu = cpu_install + cpu_uninstall

    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    total = st.total_tt
    entries = sorted(st.stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    out = [f"`Runner._install_instance` then `_uninstall_instance` for each of {n} flat no-op nodes, in the main "
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
    execution = store.start_execution("bench", "install")
    sink = EventSink(store, "bench", execution, Masker())
    r = Runner(plan=plan, store=store, deployment="bench", dispatcher=Dispatcher(orch.pm), sink=sink,
               options=Options(concurrency=1, retries=0), secrets={})
    inst = next(iter(plan.instances.values()))
    node = plan.nodes[inst.node]
    rec = r.records[inst.id]
    step = next(iter(__import__("orchestrator.engine.runner", fromlist=["install_steps"]).install_steps(inst)))
    caller = r.dispatcher.caller(node.owner, "create")
    ev = [EventSink.row(sink.make("operation_started", "create started", rec.id, "create", node.owner))]
    ops_json = json.dumps({"create": "started"})

    def bench(fn: Any, n: int = 3000) -> float:
        fn()
        t0 = time.process_time()
        for _ in range(n):
            fn()
        return (time.process_time() - t0) / n * 1e6

    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (a)")
    ctx = r._context(inst, node, None, rec, step, 0, node.owner)
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
        ("`Runner._context` (OperationContext, InstanceContext, logger, closures)",
         lambda: r._context(inst, node, None, rec, step, 0, node.owner)),
        ("pluggy: the no-op `create` hook through the subset caller", lambda: caller(ctx=ctx)),
        ("`json.dumps` of the ops dict", lambda: json.dumps(rec.ops)),
        ("`Runner._merge_runtime` (nothing changed)", lambda: r._merge_runtime(ctx)),
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


# -- 5. what-if variants, no profiler -------------------------------------------------------


# -- prototypes (bench-only monkeypatches; src/ is not changed) ---------------------------------


def no_group_commit() -> Any:
    """``StateStore._commit_write`` without the leader/follower batching: one transaction per write,
    as the store did before it had group commit."""
    def _commit_write(self: Any, write: Any) -> None:
        db = self._db
        with self._lock:
            db.execute("BEGIN IMMEDIATE")
            try:
                write(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
    return _commit_write


def deferred_events_record() -> tuple[Any, Any]:
    """A drop-in for ``StateStore.record``: the instance row in its own transaction (before the hook,
    as now), its event rows buffered and inserted 200 at a time (and at the end) in one transaction.
    Returns (record, flush)."""
    import threading

    from orchestrator.state import _INSERT_EVENT

    lock = threading.Lock()
    buf: list[tuple] = []
    stores: list[Any] = []

    def flush(store: Any = None) -> None:
        with lock:
            rows = buf[:]
            buf.clear()
        target = store or (stores[0] if stores else None)
        if rows and target is not None:
            with target.transaction() as db:
                db.executemany(_INSERT_EVENT, rows)

    def record(self: Any, deployment: str, instance: str, state_: str, ops_json: str, runtime_json: str | None,
               events: list[tuple]) -> None:
        args = (state_, ops_json, runtime_json, time.time(), deployment, instance)

        def write(db: Any) -> None:
            db.execute("UPDATE instances SET state = ?, ops = ?, runtime = coalesce(?, runtime), "
                       "updated_at = ? WHERE deployment = ? AND id = ?", args)

        if hasattr(self, "_commit_write"):
            self._commit_write(write)
        else:
            with self._lock:
                write(self._db)
        if not stores:
            stores.append(self)
        with lock:
            buf.extend(events)
            full = len(buf) >= 200
        if full:
            flush(self)

    return record, flush


def engine_lock_patches() -> list[tuple[Any, str, Any]]:
    """One lock for all engine bookkeeping of all workers, released only around the hook call.

    A worker holds it from taking an instance to finishing it, except while a plugin hook
    runs; so at most one worker is runnable outside hooks, and a GIL release inside sqlite3
    wakes nobody. (A real version would also release it around retry waits.)"""
    import threading

    from orchestrator.engine.dispatch import Dispatcher

    lock = threading.Lock()
    guarded, caller = Runner._guarded, Dispatcher.caller

    def _guarded(self: Any, work: Any, inst: Any) -> bool:
        with lock:
            return guarded(self, work, inst)

    def _caller(self: Any, owner: str | None, operation: str) -> Any:
        hook = caller(self, owner, operation)
        if hook is None:
            return None

        def call(**kwargs: Any) -> Any:
            lock.release()
            try:
                return hook(**kwargs)
            finally:
                lock.acquire()
        return call

    return [(Runner, "_guarded", _guarded), (Dispatcher, "caller", _caller)]


def scheduler_fix_patches() -> list[tuple[Any, str, Any]]:
    """``_Scheduler.finish_and_take`` waking one worker fewer: the finishing worker takes one of
    the instances it released itself, so waking a worker for it only makes that worker find
    nothing and sleep again (in a chain: one futile wake-up, two context switches, per instance)."""
    from orchestrator.engine import runner as runner_module

    def finish_and_take(self: Any, iid: str, ok: bool) -> str | None:
        with self._cond:
            self._running -= 1
            if ok:
                self._sorter.done(iid)
                released = self._sorter.get_ready()
                if released:
                    self._ready.extend(released)
                    if len(released) > 1:
                        self._cond.notify(len(released) - 1)
            if not self._running and (not self._ready or self._failed.is_set()):
                self._cond.notify_all()
            return self._next()

    return [(runner_module._Scheduler, "finish_and_take", finish_and_take)]


def _runner(orch: Orchestrator, plan: Any, workflow: str, persist: bool, concurrency: int,
            records: Any = None) -> tuple[Runner, int | None]:
    store = orch.store if persist else None
    execution = store.start_execution("bench", workflow) if store else None
    sink = EventSink(store, "bench", execution, Masker())
    return Runner(plan=plan, store=store, deployment="bench", dispatcher=Dispatcher(orch.pm), sink=sink,
                  options=Options(concurrency=concurrency, retries=0), secrets={}, records=records), execution


def one_variant(n: int, persist: bool = True, threads: bool = True, pragmas: tuple[str, ...] = (),
                concurrency: int = 10, sleep: float = 0.0, shm: bool = False, group: bool = True,
                shape: str = "flat", deferred: bool = False, page_size: int | None = None, pin: bool = False,
                engine_lock: bool = False, sched_fix: bool = False) -> dict[str, float]:
    """Install + uninstall of n nodes with the engine's own classes: CPU and wall per operation,
    context switches per operation, install wall time."""
    import os
    import resource

    from orchestrator.state import StateStore

    patches: list[tuple[Any, str, Any]] = []
    flush = None
    if not group and hasattr(StateStore, "_commit_write"):
        patches.append((StateStore, "_commit_write", no_group_commit()))
    if deferred:
        record, flush = deferred_events_record()
        patches.append((StateStore, "record", record))
    if engine_lock:
        patches += engine_lock_patches()
    if sched_fix:
        patches += scheduler_fix_patches()
    saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
    cpus = os.sched_getaffinity(0)
    try:
        for owner, name, value in patches:
            setattr(owner, name, value)
        if pin:
            os.sched_setaffinity(0, {min(cpus)})
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        row = _one_variant(n, persist, threads, pragmas, concurrency, sleep, shm, shape, flush, page_size)
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        row["ctxsw"] = (r1.ru_nvcsw - r0.ru_nvcsw + r1.ru_nivcsw - r0.ru_nivcsw) / (5 * n)
        return row
    finally:
        os.sched_setaffinity(0, cpus)
        for owner, name, value in saved:
            setattr(owner, name, value)


def _one_variant(n: int, persist: bool, threads: bool, pragmas: tuple[str, ...], concurrency: int, sleep: float,
                 shm: bool, shape: str, flush: Any, page_size: int | None) -> dict[str, float]:
    orch, path = setup(shape, n, sleep)
    if shm and Path("/dev/shm").is_dir():
        orch.state_path = tmpdir(dir="/dev/shm") / "state.db"
    if page_size:  # the page size is fixed when the file is created: make it before StateStore does
        db = sqlite3.connect(orch.state_path)
        db.execute(f"PRAGMA page_size={page_size}")
        db.execute("CREATE TABLE page_size_probe (x)")
        db.commit()
        db.close()
    prepared = orch.prepare_install(path, deployment="bench")
    for pragma in pragmas:
        orch.store._db.execute(pragma)
    plan = prepared.plan
    cpu0, t0 = time.process_time(), time.perf_counter()
    r, ex = _runner(orch, plan, "install", persist, concurrency)
    if threads:
        res = r.install()
        assert res.ok, res.failures
    else:
        for inst in plan.instances.values():  # in plan order: a chain's targets come first
            assert r._install_instance(inst)
    if flush is not None:
        flush()  # an instance's events are all stored once its workflow ends
    t_install = time.perf_counter() - t0
    if ex is not None:
        orch.store.end_execution(ex, "succeeded")
    ops = r.operations
    u, ex = _runner(orch, plan, "uninstall", persist, concurrency, None if persist else r.records)
    if threads:
        assert u.uninstall().ok
    else:
        for inst in reversed(list(plan.instances.values())):
            assert u._uninstall_instance(inst)
    if flush is not None:
        flush()
    if ex is not None:
        orch.store.end_execution(ex, "succeeded")
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    ops += u.operations
    assert ops == 5 * n, ops
    if persist:
        states = {row.state for row in orch.store.instances("bench").values()}
        assert states == {"deleted"}, states
    orch.close()
    return {"cpu_us": cpu / ops * 1e6, "wall_us": wall / ops * 1e6, "install_s": t_install}


def _table(cases: list[tuple[str, dict[str, Any]]], n: int, runs: int, rng: random.Random,
           sleep_case: bool = False) -> list[str]:
    import statistics

    results: dict[int, list[dict[str, float]]] = defaultdict(list)
    for _ in range(runs):
        order = list(enumerate(cases))
        rng.shuffle(order)  # no variant always runs first (or right after the same one)
        for i, (_, kw) in order:
            results[i].append(one_variant(n, **kw))
    if sleep_case:
        out = ["| install s (median) | over 0.30 s | CPU µs/op | context switches/op | variant (runs: install s) |",
               "| ---: | ---: | ---: | ---: | --- |"]
    else:
        out = ["| CPU µs/op | wall µs/op | context switches/op | variant (runs: CPU µs/op) |",
               "| ---: | ---: | ---: | --- |"]
    for i, (what, _) in enumerate(cases):
        rs = results[i]
        med = {k: statistics.median(r[k] for r in rs) for k in ("cpu_us", "wall_us", "install_s", "ctxsw")}
        if sleep_case:
            out.append(f"| {med['install_s']:.3f} | +{(med['install_s'] / 0.30 - 1) * 100:.1f} % | "
                       f"{med['cpu_us']:.0f} | {med['ctxsw']:.1f} | {what} "
                       f"({', '.join(format(r['install_s'], '.3f') for r in rs)}) |")
        else:
            out.append(f"| {med['cpu_us']:.0f} | {med['wall_us']:.0f} | {med['ctxsw']:.2f} | {what} "
                       f"({', '.join(format(r['cpu_us'], '.0f') for r in rs)}) |")
    return out


def variants_view(n: int, runs: int = 3) -> str:
    rng = random.Random(9)
    fixes = {"engine_lock": True, "sched_fix": True, "group": False}
    flat = [
        ("**as shipped**: 10 worker threads, SQLite state file, `StateStore` group commit", {}),
        ("group commit **off** (one transaction per write, as before it)", {"group": False}),
        ("**no state store** (`store=None`: no SQLite at all)", {"persist": False}),
        ("main thread only (`_install_instance` in a loop), SQLite state file", {"threads": False}),
        ("main thread only, no state store", {"threads": False, "persist": False}),
        ("concurrency 1", {"concurrency": 1}),
        ("**process pinned to one CPU** (`sched_setaffinity`)", {"pin": True}),
        ("SQLite tuning: state file on tmpfs (/dev/shm)", {"shm": True}),
        ("SQLite tuning: `PRAGMA synchronous=OFF`", {"pragmas": ("PRAGMA synchronous=OFF",)}),
        ("SQLite tuning: `PRAGMA wal_autocheckpoint=0`", {"pragmas": ("PRAGMA wal_autocheckpoint=0",)}),
        ("SQLite tuning: events index dropped", {"pragmas": ("DROP INDEX events_by_deployment",)}),
        ("SQLite tuning: state file created with `page_size=1024`", {"page_size": 1024}),
        ("prototype: **events deferred** (instance row per operation as now; event rows 200 per transaction)",
         {"deferred": True}),
        ("prototype: **engine lock** (held for bookkeeping, released around hook calls)", {"engine_lock": True}),
        ("prototypes: engine lock + scheduler fix + group commit off", dict(fixes)),
        ("prototypes: engine lock + scheduler fix + group commit off + events deferred", {**fixes, "deferred": True}),
        ("prototypes: all of the above, concurrency 1 (the single-thread floor with the fixes)",
         {**fixes, "deferred": True, "concurrency": 1}),
    ]
    out = [f"Install + uninstall of {n} flat no-op nodes ({5 * n} operations), concurrency 10 unless said; each "
           f"variant {runs} runs in shuffled order, median; no profiler. Prototypes are monkeypatches inside this "
           "process (see the functions above `_runner` in `bench/profile_engine.py`); nothing in `src/` changes.",
           "", *_table(flat, n, runs, rng)]

    out += ["", "Concurrency scan (CPU µs/op; median, all runs in brackets):", "",
            "| concurrency | SQLite store, group commit (shipped) | group commit off | no store | "
            "engine lock + scheduler fix + group commit off |", "| ---: | ---: | ---: | ---: | ---: |"]
    import statistics

    scan: dict[tuple[int, str], list[float]] = defaultdict(list)
    kinds = {"group": {}, "nogroup": {"group": False}, "none": {"persist": False}, "fixes": dict(fixes)}
    for _ in range(runs):
        order = [(c, k) for c in (1, 2, 4, 10) for k in kinds]
        rng.shuffle(order)
        for c, k in order:
            scan[(c, k)].append(one_variant(n, concurrency=c, **kinds[k])["cpu_us"])

    def cell(c: int, k: str) -> str:
        v = scan[(c, k)]
        return f"{statistics.median(v):.0f} ({', '.join(f'{x:.0f}' for x in v)})"
    for c in (1, 2, 4, 10):
        out.append(f"| {c} | {cell(c, 'group')} | {cell(c, 'nogroup')} | {cell(c, 'none')} | {cell(c, 'fixes')} |")

    sleep = {"concurrency": 50, "sleep": 0.05}
    out += ["", f"The 50 ms case (100 flat nodes, concurrency 50), {runs + 2} runs each:", "",
            *_table([("as shipped", dict(sleep)), ("group commit off", {**sleep, "group": False}),
                     ("no state store", {**sleep, "persist": False}), ("pinned to one CPU", {**sleep, "pin": True}),
                     ("engine lock + scheduler fix + group commit off", {**sleep, **fixes}),
                     ("... + events deferred", {**sleep, **fixes, "deferred": True})],
                    100, runs + 2, rng, sleep_case=True)]
    out += ["", f"Chain of 200 no-op nodes (1,000 operations, strictly one at a time), {runs + 2} runs each:", "",
            *_table([("as shipped (group commit: nothing to batch in a chain)", {"shape": "chain"}),
                     ("no state store", {"shape": "chain", "persist": False}),
                     ("scheduler fix", {"shape": "chain", "sched_fix": True}),
                     ("engine lock + scheduler fix + group commit off", {"shape": "chain", **fixes}),
                     ("... + events deferred", {"shape": "chain", **fixes, "deferred": True}),
                     ("pinned to one CPU", {"shape": "chain", "pin": True})],
                    200, runs + 2, rng)]
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
    print("1/5 yappi (all threads) ...", flush=True)
    text, _ = yappi_view(args.nodes, args.concurrency)
    parts += ["## 1. yappi, CPU clock, all threads (the real run)", "", text, ""]
    print("2/5 cProfile (main thread proxy) ...", flush=True)
    parts += ["## 2. cProfile, CPU timer, `_install_instance` / `_uninstall_instance` in the main thread", "",
              cprofile_view(args.nodes), ""]
    print("3/5 micro-timings ...", flush=True)
    parts += ["## 3. Building blocks of one operation, timed alone", "", micro_view(), ""]
    print("4/5 50 ms case timeline ...", flush=True)
    parts += ["## 4. The 50 ms case: what happens between the sleeps", "", sleep_timeline(), ""]
    print("5/5 what-if variants ...", flush=True)
    parts += ["## 5. What-if variants, no profiler", "", variants_view(args.nodes), ""]
    Path(args.out).write_text("\n".join(parts))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
