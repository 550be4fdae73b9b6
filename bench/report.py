# The Markdown and the plots use typographic signs on purpose (multiplication sign, en dash):
# ruff: noqa: RUF001
"""Summaries, goals, Markdown and plots from the raw rows that ``bench/run.py`` writes.

    python bench/report.py [bench/results/latest.json] [--out bench/results]

Every figure is a median over fresh-process runs (min in brackets); ratios are
Cloudify's median over ours. Where Cloudify did not finish within its timeout, the
time is extrapolated from a quadratic fit through its measured sizes, and labelled so.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import day2_report  # noqa: E402
import plugins_report  # noqa: E402
import state_report  # noqa: E402
from measure import stats  # noqa: E402

# Goals (from the issues).
PLAN_RATIO_GOAL = 50.0  # plan >= 50x faster than Cloudify at 1,000 nodes
PLAN_RATIO_NODES = 1000
ENGINE_RATIO_GOAL = 10.0  # engine overhead per operation >= 10x lower than Cloudify's
OUR_OP_GOAL_US = 50.0  # our engine overhead <= 50 us per operation
SLEEP_GOAL = 0.10  # the 50 ms case within 10 % of ideal
PLAN_10K_GOAL_S = 1.0  # our plan of 10,000 nodes < 1 s ...
LINEAR_MAX_EXPONENT = 1.15  # ... with linear growth: fitted t ~ n^k over n >= 1,000, k <= this

PLAN_METRICS = ("wall_s", "cpu_s", "peak_rss_mb", "rss_after_import_mb")
ENGINE_METRICS = ("install_s", "uninstall_s", "per_op_us", "cpu_per_op_us", "cpu_install_s", "cpu_uninstall_s",
                  "peak_rss_mb", "rss_after_import_mb", "ideal_install_s", "ideal_uninstall_s")
SYSTEMS = ("orchestrator", "cloudify")
LABEL = {"orchestrator": "orchestrator", "cloudify": "Cloudify local"}
COLOR = {"orchestrator": "#1f77b4", "cloudify": "#d62728"}


# -- summary ---------------------------------------------------------------------------


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    plan: dict[tuple[str, int], dict[str, dict[str, Any]]] = defaultdict(dict)
    engine: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
    groups: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        key = (r["kind"], r["system"], r["shape"], r["nodes"]) if r["kind"] == "plan" else \
            (r["kind"], r["system"], r["case"])
        groups[key].append(r)
    for key, rs in groups.items():
        ok = [r for r in rs if "error" not in r]
        bad = [r for r in rs if "error" in r]
        metrics = PLAN_METRICS if key[0] == "plan" else ENGINE_METRICS
        cell: dict[str, Any] = {m: stats([r.get(m) for r in ok]) for m in metrics}
        cell["runs"] = len(ok)
        cell["errors"] = [r["error"] for r in bad]
        cell["timeout_s"] = max((r["timeout_s"] for r in bad if r["error"] == "timeout"), default=None)
        cell["load"] = [r["load_before"][0] for r in rs]
        if key[0] == "plan":
            plan[(key[2], key[3])][key[1]] = cell
        else:
            engine[key[2]][key[1]] = cell
    return {"plan": dict(plan), "engine": dict(engine)}


def med(cell: dict[str, Any] | None, metric: str) -> float | None:
    if not cell or not cell.get(metric):
        return None
    return cell[metric]["median"]


def quadratic_fit(points: list[tuple[int, float]]) -> tuple[float, float] | None:
    """t = a*n^2 + b*n, least squares on relative error; exact through two points."""
    if len(points) < 2:
        return None
    # Minimise sum(((a n^2 + b n) / t - 1)^2): normal equations in (a, b).
    s11 = sum((n * n / t) ** 2 for n, t in points)
    s12 = sum((n * n / t) * (n / t) for n, t in points)
    s22 = sum((n / t) ** 2 for n, t in points)
    r1 = sum(n * n / t for n, t in points)
    r2 = sum(n / t for n, t in points)
    det = s11 * s22 - s12 * s12
    if det == 0:
        return None
    return (r1 * s22 - r2 * s12) / det, (s11 * r2 - s12 * r1) / det


def power_exponent(points: list[tuple[int, float]]) -> float | None:
    """k of a least-squares fit log t = k log n + c."""
    if len(points) < 2:
        return None
    xs = [math.log(n) for n, _ in points]
    ys = [math.log(t) for _, t in points]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else None


def analyse(data: dict[str, Any]) -> dict[str, Any]:
    """The summary plus derived figures: fits, extrapolations, ratios."""
    s = summarize(data["rows"])
    settings = data["meta"].get("settings", {})
    cfy_sizes = settings.get("cloudify_plan_sizes", [])
    shapes = sorted({shape for shape, _ in s["plan"]}, key=lambda x: ("flat", "chain", "fanout").index(x))
    fits: dict[str, Any] = {}
    for shape in shapes:
        sizes = sorted(n for sh, n in s["plan"] if sh == shape)
        ours = [(n, med(s["plan"][(shape, n)].get("orchestrator"), "wall_s")) for n in sizes]
        ours = [(n, t) for n, t in ours if t]
        ours_cpu = [(n, med(s["plan"][(shape, n)].get("orchestrator"), "cpu_s")) for n in sizes]
        ours_cpu = [(n, t) for n, t in ours_cpu if t]
        cfy = [(n, med(s["plan"][(shape, n)].get("cloudify"), "wall_s")) for n in sizes]
        cfy = [(n, t) for n, t in cfy if t]
        cfy_cpu = [(n, med(s["plan"][(shape, n)].get("cloudify"), "cpu_s")) for n in sizes]
        cfy_cpu = [(n, t) for n, t in cfy_cpu if t]
        fit, fit_cpu = quadratic_fit(cfy), quadratic_fit(cfy_cpu)
        extrapolated = {}
        for n in cfy_sizes:
            if fit and not med(s["plan"].get((shape, n), {}).get("cloudify"), "wall_s"):
                extrapolated[n] = {"wall_s": fit[0] * n * n + fit[1] * n,
                                   "cpu_s": fit_cpu[0] * n * n + fit_cpu[1] * n if fit_cpu else None}
        fits[shape] = {
            "ours_exponent": power_exponent([(n, t) for n, t in ours if n >= 1000]),
            "ours_cpu_exponent": power_exponent([(n, t) for n, t in ours_cpu if n >= 1000]),
            "ours_points": ours,
            "ours_cpu_points": ours_cpu,
            "cloudify_exponent": power_exponent(cfy),
            "cloudify_points": cfy,
            "cloudify_quadratic": {"a": fit[0], "b": fit[1], "points": [n for n, _ in cfy]} if fit else None,
            "cloudify_extrapolated": extrapolated,
        }
    s["fits"] = fits
    s["shapes"] = shapes
    return s


def cloudify_plan_value(s: dict[str, Any], shape: str, n: int, metric: str = "wall_s") -> tuple[float | None, bool]:
    """Cloudify's median, or its extrapolation (second value True)."""
    v = med(s["plan"].get((shape, n), {}).get("cloudify"), metric)
    if v is not None:
        return v, False
    e = s["fits"][shape]["cloudify_extrapolated"].get(n)
    return (e[metric], True) if e and e.get(metric) is not None else (None, False)


# -- goals -----------------------------------------------------------------------------


def goals(s: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []

    def add(goal: str, measured: str, met: bool | None, miss: str = "") -> None:
        out.append({"goal": goal, "measured": measured, "met": met, "miss": miss})

    for shape in ("flat", "chain"):
        cell = s["plan"].get((shape, PLAN_RATIO_NODES), {})
        ours, ours_cpu = med(cell.get("orchestrator"), "wall_s"), med(cell.get("orchestrator"), "cpu_s")
        cfy, extra = cloudify_plan_value(s, shape, PLAN_RATIO_NODES)
        cfy_cpu, _ = cloudify_plan_value(s, shape, PLAN_RATIO_NODES, "cpu_s")
        if ours and cfy:
            r = cfy / ours
            rc = f"; CPU {cfy_cpu / ours_cpu:,.0f}×" if cfy_cpu and ours_cpu else ""
            add(f"plan ≥ {PLAN_RATIO_GOAL:.0f}× faster than Cloudify at {PLAN_RATIO_NODES:,} nodes ({shape})",
                f"{r:,.0f}× ({fmt_s(cfy)}{' extrapolated' if extra else ''} vs {fmt_s(ours)}{rc})",
                r >= PLAN_RATIO_GOAL,
                f"our {shape} plan of {PLAN_RATIO_NODES:,} nodes is only {r:.0f}× faster than Cloudify's")
        else:
            add(f"plan ≥ {PLAN_RATIO_GOAL:.0f}× faster than Cloudify at {PLAN_RATIO_NODES:,} nodes ({shape})",
                "not measured", None)

    for case in ("flat-1000", "chain-200"):
        cell = s["engine"].get(case, {})
        o, c = cell.get("orchestrator"), cell.get("cloudify")
        ow, cw, oc, cc = (med(o, "per_op_us"), med(c, "per_op_us"), med(o, "cpu_per_op_us"), med(c, "cpu_per_op_us"))
        if ow and cw:
            r = cw / ow
            rc = cc / oc if oc and cc else None
            met = r >= ENGINE_RATIO_GOAL
            add(f"engine overhead per operation ≥ {ENGINE_RATIO_GOAL:.0f}× lower than Cloudify's ({case}, no-op)",
                f"{r:.1f}× wall ({cw:,.0f} vs {ow:,.0f} µs/op); CPU {rc:.1f}× ({cc:,.0f} vs {oc:,.0f} µs/op)",
                met, f"our engine costs {ow:.0f} µs of wall ({oc:.0f} µs CPU) per operation against Cloudify's "
                     f"{cw:.0f} µs: {r:.1f}×, not {ENGINE_RATIO_GOAL:.0f}×")
        if ow:
            add(f"ours ≤ {OUR_OP_GOAL_US:.0f} µs per operation ({case}, no-op)",
                f"{ow:.0f} µs/op wall, {oc:.0f} µs/op CPU", ow <= OUR_OP_GOAL_US,
                f"{ow:.0f} µs of wall and {oc:.0f} µs of CPU per operation, "
                f"{ow / OUR_OP_GOAL_US:.1f}× the {OUR_OP_GOAL_US:.0f} µs budget")

    cell = s["engine"].get("sleep-100", {})
    o, c = cell.get("orchestrator"), cell.get("cloudify")
    if o:
        ideal = med(o, "ideal_install_s")
        oi = med(o, "install_s")
        over = oi / ideal - 1
        best = o["install_s"]["min"] / ideal - 1
        cfy = f"; Cloudify {med(c, 'install_s'):.3f} s (+{(med(c, 'install_s') / ideal - 1) * 100:.0f} %)" if c and \
            med(c, "install_s") else ""
        add(f"100 × 50 ms operations, concurrency 50: install within {SLEEP_GOAL * 100:.0f} % of ideal "
            f"({ideal:.2f} s)", f"{oi:.3f} s, +{over * 100:.1f} % (best run +{best * 100:.1f} %){cfy}",
            over <= SLEEP_GOAL, f"install took {oi:.3f} s (median), {over * 100:.1f} % over the ideal {ideal:.2f} s")

    for shape in ("flat", "chain"):
        ours = med(s["plan"].get((shape, 10000), {}).get("orchestrator"), "wall_s")
        cpu = med(s["plan"].get((shape, 10000), {}).get("orchestrator"), "cpu_s")
        k = s["fits"].get(shape, {}).get("ours_cpu_exponent")
        kw = s["fits"].get(shape, {}).get("ours_exponent")
        if ours:
            add(f"our plan of 10,000 nodes < {PLAN_10K_GOAL_S:.0f} s ({shape})", f"{ours:.3f} s (CPU {cpu:.3f} s)",
                ours < PLAN_10K_GOAL_S, f"our {shape} plan of 10,000 nodes takes {ours:.2f} s")
        if k is not None:
            pts = s["fits"][shape]["ours_points"]
            sizes = [n for n, _ in pts if n >= 1000]
            add(f"our plan grows linearly ({shape}: CPU time ∝ n^k fitted over {min(sizes):,}–{max(sizes):,} "
                f"nodes, k ≤ {LINEAR_MAX_EXPONENT})", f"k = {k:.2f} (wall: {kw:.2f})", k <= LINEAR_MAX_EXPONENT,
                f"our {shape} plan's CPU time grows as n^{k:.2f}, faster than linear")
    return out


# -- formatting ------------------------------------------------------------------------


def fmt_s(v: float | None) -> str:
    if v is None:
        return "—"
    if v >= 100:
        return f"{v:,.0f} s"
    if v >= 1:
        return f"{v:.2f} s"
    if v >= 0.01:
        return f"{v * 1000:.0f} ms"
    return f"{v * 1000:.1f} ms"


def fmt_cell(st: dict[str, float] | None, f: Any = fmt_s) -> str:
    if not st:
        return "—"
    if st["runs"] == 1:
        return f(st["median"])
    return f"{f(st['median'])} ({f(st['min'])})"


def fmt_mb(v: float | None) -> str:
    return "—" if v is None else f"{v:,.0f} MB"


def status(met: bool | None) -> str:
    return "n/a" if met is None else ("✅ met" if met else "❌ **MISSED**")


def markdown(data: dict[str, Any], s: dict[str, Any], gl: list[dict[str, Any]], images: list[str]) -> str:
    meta = data["meta"]
    m = meta["machine"]
    rows = data["rows"]
    loads = [r["load_before"][0] for r in rows]
    ov, cv = meta.get("orchestrator_versions", {}), meta.get("cloudify_versions", {})
    st = meta.get("settings", {})
    git = meta.get("git", {})
    L: list[str] = []
    L += ["# orchestrator vs Cloudify local mode: benchmark results", ""]
    L += [f"Generated by `make bench` (`bench/run.py`), started {meta.get('started')}, the suite took "
          f"**{meta.get('suite_wall_s', 0) / 60:.1f} min**"
          + ("" if meta.get("complete") else " (**incomplete run**: the suite stopped early)") + ". "
          f"Commit `{(git.get('commit') or '?')[:10]}` with {git.get('uncommitted_changes', '?')} uncommitted "
          "changes. How to reproduce and what each case measures: [`bench/README.md`](../README.md).", ""]
    L += [f"**Machine**: {m['cpu_model']}, {m['cores']} cores, {fmt_mb(m.get('memory_mb'))} RAM, {m['platform']}. "
          f"**Shared and noisy**: load average {m['load_average'][0]:.2f} at the start, "
          f"{meta.get('load_average_end', ['?'])[0]} at the end, {min(loads):.2f}–{max(loads):.2f} (1-min) before "
          "the individual runs. Figures are medians over fresh-process runs with the minimum in brackets; "
          "CPU time (all threads of the process) is given next to wall time because it is the steadier "
          "figure on a loaded machine.", ""]
    L += [f"**Software**: orchestrator {ov.get('orchestrator')} (pluggy {ov.get('pluggy')}, PyYAML {ov.get('PyYAML')}, "
          f"yaml-rs {ov.get('yaml-rs')}) on Python {m['python']}; Cloudify local mode = cloudify-common "
          f"{cv.get('cloudify-common')} (networkx {cv.get('networkx')}) on Python {cv.get('python')}. "
          f"Runs per case: {st.get('repeat')} ({st.get('sleep_min_repeat')} for the 50 ms case; Cloudify's plans "
          f"of ≥ 1,000 nodes {st.get('cloudify_slow_repeat')}×, those of ≥ 5,000 nodes capped at "
          f"{st.get('cloudify_timeout_s', 0):.0f} s).", ""]

    L += ["## Goals", "", "| goal | measured (median) | status |", "| --- | --- | --- |"]
    L += [f"| {g['goal']} | {g['measured']} | {status(g['met'])} |" for g in gl]
    missed = [g for g in gl if g["met"] is False]
    L += [""]
    if missed:
        L += [f"**{len(missed)} of {len(gl)} goals missed:**", ""]
        L += [f"- **Missed**: {g['miss']}." for g in missed]
        L += ["", "Profile of our side and what would fix it: [`profile.md`](profile.md).", ""]
    else:
        L += ["All goals met.", ""]

    L += ["## Results", "", "### Parse + validate + plan", ""]
    L += ["Ours: `Orchestrator.load` + `build_plan`; Cloudify: `local.init_env` (parse, validate, plan, "
          "in-memory storage). Same node templates (`bench/generate.py`): each node has an input-valued "
          "property and a `concat`; a chain's node `depends_on` the previous one.", ""]
    L += ["| shape | nodes | ours wall | ours CPU | Cloudify wall | Cloudify CPU | Cloudify / ours (wall) | "
          "(CPU) | peak RSS ours / Cloudify | goal |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    for (shape, n) in sorted(s["plan"], key=lambda k: (s["shapes"].index(k[0]), k[1])):
        cell = s["plan"][(shape, n)]
        o, c = cell.get("orchestrator"), cell.get("cloudify")
        ow, oc = med(o, "wall_s"), med(o, "cpu_s")
        cw, extra = cloudify_plan_value(s, shape, n)
        cc, _ = cloudify_plan_value(s, shape, n, "cpu_s")
        if c and c["runs"]:
            cwall, ccpu = fmt_cell(c["wall_s"]), fmt_cell(c["cpu_s"])
        elif c and c["timeout_s"]:
            cwall = f"> {c['timeout_s']:.0f} s (timeout); ≈ {fmt_s(cw)} *extrapolated*" if cw else \
                f"> {c['timeout_s']:.0f} s (timeout)"
            ccpu = f"≈ {fmt_s(cc)} *extrap.*" if cc else "—"
        elif c:
            cwall, ccpu = f"failed: {', '.join(c['errors'])}", "—"
        else:
            cwall, ccpu = "—", "—"
        ratio = f"{'≈ ' if extra else ''}{cw / ow:,.0f}×" if cw and ow else "—"
        ratio_cpu = f"{'≈ ' if extra else ''}{cc / oc:,.0f}×" if cc and oc else "—"
        rss = f"{fmt_mb(med(o, 'peak_rss_mb'))} / {fmt_mb(med(c, 'peak_rss_mb'))}" if c and c["runs"] else \
            fmt_mb(med(o, "peak_rss_mb"))
        goal = ""
        if n == PLAN_RATIO_NODES and cw and ow:
            goal = f"≥ {PLAN_RATIO_GOAL:.0f}×: {status(cw / ow >= PLAN_RATIO_GOAL)}"
        if n == 10000 and ow:
            goal = f"< {PLAN_10K_GOAL_S:.0f} s: {status(ow < PLAN_10K_GOAL_S)}"
        L += [f"| {shape} | {n:,} | {fmt_cell(o['wall_s']) if o else '—'} | {fmt_cell(o['cpu_s']) if o else '—'} | "
              f"{cwall} | {ccpu} | {ratio} | {ratio_cpu} | {rss} | {goal} |"]
    L += [""]
    for shape in s["shapes"]:
        f = s["fits"][shape]
        line = (f"- **{shape}**: ours grows as n^{f['ours_cpu_exponent']:.2f} in CPU time, n^{f['ours_exponent']:.2f} "
                f"in wall time (fits over ≥ 1,000 nodes")
        line += f"; {', '.join(f'{t / n * 1e6:.0f}' for n, t in f['ours_points'])} µs per node at "
        line += f"{', '.join(f'{n:,}' for n, _ in f['ours_points'])} nodes)"
        if f["cloudify_exponent"] is not None:
            line += f"; Cloudify as n^{f['cloudify_exponent']:.2f} between {f['cloudify_points'][0][0]:,} and " \
                    f"{f['cloudify_points'][-1][0]:,} nodes"
        q = f["cloudify_quadratic"]
        if q and f["cloudify_extrapolated"]:
            ex = ", ".join(f"{n:,} nodes ≈ {fmt_s(v['wall_s'])}" for n, v in f["cloudify_extrapolated"].items())
            line += (f". **Extrapolated** (not measured) from the quadratic fit t = {q['a']:.3g}·n² + {q['b']:.3g}·n "
                     f"through Cloudify's measured {', '.join(f'{n:,}' for n in q['points'])} nodes: {ex}")
        L += [line + "."]
    L += [""]

    L += ["### Install + uninstall, no-op operations", ""]
    L += ["Workflow time only (ours: `Prepared.run()`; Cloudify: `env.execute()`), planning excluded; µs/op = "
          "(install + uninstall) / operations, 5 operations per node. Concurrency 10 for both (our worker threads; "
          "Cloudify's `task_thread_pool_size`). Ours writes every state change and event to SQLite on disk; "
          "Cloudify keeps them in memory and prints events (to /dev/null).", ""]
    L += ["| case | system | install | uninstall | µs/op wall | µs/op CPU | peak RSS | runs |",
          "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for case in ("flat-1000", "chain-200"):
        for sys_ in SYSTEMS:
            c = s["engine"].get(case, {}).get(sys_)
            if not c or not c["runs"]:
                continue
            L += [f"| {case} | {LABEL[sys_]} | {fmt_cell(c['install_s'])} | {fmt_cell(c['uninstall_s'])} | "
                  f"{fmt_cell(c['per_op_us'], lambda v: f'{v:,.0f}')} | "
                  f"{fmt_cell(c['cpu_per_op_us'], lambda v: f'{v:,.0f}')} | {fmt_mb(med(c, 'peak_rss_mb'))} | "
                  f"{c['runs']} |"]
    L += ["", "| case | Cloudify / ours, µs/op wall | (CPU) | goal ≥ 10× | ours ≤ 50 µs/op |",
          "| --- | ---: | ---: | --- | --- |"]
    for case in ("flat-1000", "chain-200"):
        cell = s["engine"].get(case, {})
        o, c = cell.get("orchestrator"), cell.get("cloudify")
        ow, cw, oc, cc = (med(o, "per_op_us"), med(c, "per_op_us"), med(o, "cpu_per_op_us"), med(c, "cpu_per_op_us"))
        if ow and cw:
            L += [f"| {case} | {cw / ow:.1f}× | {cc / oc:.1f}× | {status(cw / ow >= ENGINE_RATIO_GOAL)} | "
                  f"{status(ow <= OUR_OP_GOAL_US)} ({ow:.0f} µs) |"]
    L += [""]

    cell = s["engine"].get("sleep-100", {})
    if cell.get("orchestrator"):
        o = cell["orchestrator"]
        ii, iu = med(o, "ideal_install_s"), med(o, "ideal_uninstall_s")
        L += ["### 100 flat nodes, operations sleep 50 ms, concurrency 50", ""]
        L += [f"Ideal: 3 install operations × 50 ms × ⌈100/50⌉ = {ii:.2f} s; uninstall 2 × 50 ms × 2 = {iu:.2f} s.", ""]
        L += ["| system | install | over ideal | uninstall | over ideal | CPU per op | runs | goal (install ≤ +10 %) |",
              "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
        for sys_ in SYSTEMS:
            c = cell.get(sys_)
            if not c or not c["runs"]:
                continue
            i, u = med(c, "install_s"), med(c, "uninstall_s")
            goal = status(i / ii - 1 <= SLEEP_GOAL) if sys_ == "orchestrator" else ""
            L += [f"| {LABEL[sys_]} | {fmt_cell(c['install_s'])} | +{(i / ii - 1) * 100:.1f} % | "
                  f"{fmt_cell(c['uninstall_s'])} | +{(u / iu - 1) * 100:.1f} % | "
                  f"{med(c, 'cpu_per_op_us'):,.0f} µs | {c['runs']} | {goal} |"]
        L += [""]

    L += ["### Peak memory", "", "Peak RSS of the measuring process (`ru_maxrss`), median over runs; in brackets "
          "the RSS right after the imports (the libraries alone).", "",
          "| case | ours | Cloudify | Cloudify / ours |", "| --- | ---: | ---: | ---: |"]

    def mem(c: dict[str, Any] | None) -> str:
        if not c or not c["runs"]:
            return "—"
        return f"{fmt_mb(med(c, 'peak_rss_mb'))} ({fmt_mb(med(c, 'rss_after_import_mb'))})"
    for (shape, n) in sorted(s["plan"], key=lambda k: (s["shapes"].index(k[0]), k[1])):
        o, c = s["plan"][(shape, n)].get("orchestrator"), s["plan"][(shape, n)].get("cloudify")
        if c and c["runs"] and o and o["runs"]:
            L += [f"| plan {shape} {n:,} | {mem(o)} | {mem(c)} | "
                  f"{med(c, 'peak_rss_mb') / med(o, 'peak_rss_mb'):.1f}× |"]
    for case in ("flat-1000", "chain-200", "sleep-100"):
        o, c = s["engine"].get(case, {}).get("orchestrator"), s["engine"].get(case, {}).get("cloudify")
        if o and c and o["runs"] and c["runs"]:
            L += [f"| install + uninstall {case} | {mem(o)} | {mem(c)} | "
                  f"{med(c, 'peak_rss_mb') / med(o, 'peak_rss_mb'):.1f}× |"]
    L += [""]

    errors = [r for r in rows if "error" in r]
    if errors:
        L += ["### Timeouts and failures", ""]
        for r in errors:
            what = f"timed out after {r['timeout_s']:.0f} s" if r["error"] == "timeout" else r["error"]
            L += [f"- {LABEL[r['system']]} {r['kind']} {r['case']} (run {r['run']}): {what}"
                  + (" — capped on purpose, see the extrapolation above" if r["error"] == "timeout" else "")]
        L += [""]

    remote = (data.get("plugins") or {}).get("remote") or {}
    if remote.get("rows"):
        L += ["### Hook calls on Celery workers", "",
              "Independent nodes x 3 operations (`bench/remote_bench.py`); Redis broker, workers of concurrency 10 on "
              f"this machine, state: {remote.get('state', 'sqlite')}. Ideal = operations x sleep / (10 x workers).", "",
              "| case | executor | workers | wall s | ideal s | over ideal | CLI CPU s | worker CPU s | per op ms |",
              "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in remote["rows"]:
            ideal = r.get("ideal")
            over = f"{(r['wall'] / ideal - 1) * 100:+.1f} %" if ideal else ""
            per_op = f"{r['wall'] / r['ops'] * 1000:.2f}" if r.get("ops") else ""
            L += [f"| {r['case']} | {r['executor']} | {r['workers'] or ''} | {r['wall']:.2f} | "
                  f"{'' if ideal is None else f'{ideal:.1f}'} | {over} | {r['cli_cpu']:.1f} | "
                  f"{r.get('worker_cpu', 0):.1f} | {per_op} |"]
        L += [""]

    L += ["## Plots", ""]
    L += [f"![{name}]({name})" for name in images]
    L += ["", "Raw rows (every run, with the load average before it) and machine details: "
          "[`latest.json`](latest.json).", ""]
    return "\n".join(L)


# -- plots -----------------------------------------------------------------------------


def plots(s: dict[str, Any], out: Path, meta: dict[str, Any], rows: list[dict[str, Any]]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    m = meta["machine"]
    loads = [r["load_before"][0] for r in rows] or [m["load_average"][0]]
    machine = (f"{m['cpu_model']}, {m['cores']} cores, shared and noisy: load average {min(loads):.1f}–{max(loads):.1f} "
               f"during the run; medians of fresh-process runs")
    written = []

    # -- plan: time and memory against nodes, log-log ------------------------------------
    fig, axes = plt.subplots(2, 2, figsize=(13, 10.5), layout="constrained")
    handles: list[Any] = []
    labels: list[str] = []
    for col, shape in enumerate(("flat", "chain")):
        ax, axm = axes[0][col], axes[1][col]
        sizes = sorted(n for sh, n in s["plan"] if sh == shape)
        for sys_ in SYSTEMS:
            pts = [(n, s["plan"][(shape, n)].get(sys_)) for n in sizes]
            pts = [(n, c) for n, c in pts if c and c["runs"]]
            if not pts:
                continue
            xs = [n for n, _ in pts]
            ys = [c["wall_s"]["median"] for _, c in pts]
            lo = [y - c["wall_s"]["min"] for y, (_, c) in zip(ys, pts, strict=True)]
            hi = [c["wall_s"]["max"] - y for y, (_, c) in zip(ys, pts, strict=True)]
            ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", color=COLOR[sys_], capsize=3, lw=2,
                        label=f"{LABEL[sys_]} (median, min–max)")
            ax.plot(xs, [c["cpu_s"]["median"] for _, c in pts], ls=":", marker=".", color=COLOR[sys_], alpha=0.7,
                    label=f"{LABEL[sys_]} CPU time")
            axm.plot(xs, [c["peak_rss_mb"]["median"] for _, c in pts], marker="o", color=COLOR[sys_], lw=2,
                     label=f"{LABEL[sys_]} peak RSS")
            axm.plot(xs, [c["rss_after_import_mb"]["median"] for _, c in pts], ls=":", color=COLOR[sys_],
                     alpha=0.6, label=f"{LABEL[sys_]} RSS after imports")
            for (n, _c), y in zip(pts, ys, strict=True):
                ax.annotate(fmt_s(y), (n, y), textcoords="offset points", xytext=(6, -12 if sys_ == "orchestrator"
                                                                                  else 6), fontsize=8,
                            color=COLOR[sys_])
            if sys_ == "cloudify":
                f = s["fits"][shape]
                for n, v in f["cloudify_extrapolated"].items():
                    x0, y0 = xs[-1], ys[-1]
                    ax.plot([x0, n], [y0, v["wall_s"]], ls="--", color=COLOR[sys_], lw=1.5)
                    ax.plot([n], [v["wall_s"]], marker="o", mfc="white", color=COLOR[sys_], ms=9,
                            label="Cloudify extrapolated (quadratic fit), not measured")
                    ax.annotate(f"≈ {fmt_s(v['wall_s'])}\n(extrapolated)", (n, v["wall_s"]),
                                textcoords="offset points", xytext=(8, -4), fontsize=8, color=COLOR[sys_])
                    cell = s["plan"].get((shape, n), {}).get(sys_)
                    if cell and cell.get("timeout_s"):
                        ax.plot([n], [cell["timeout_s"]], marker="^", color=COLOR[sys_], ms=9, ls="none",
                                label="Cloudify timed out (lower bound)")
                        ax.annotate(f"> {cell['timeout_s']:.0f} s\n(timeout)", (n, cell["timeout_s"]),
                                    textcoords="offset points", xytext=(-62, -4), fontsize=8, color=COLOR[sys_])
        # The 1,000-node ratio.
        cell = s["plan"].get((shape, PLAN_RATIO_NODES), {})
        ow = med(cell.get("orchestrator"), "wall_s")
        cw, _ = cloudify_plan_value(s, shape, PLAN_RATIO_NODES)
        if ow and cw:
            ax.annotate("", xy=(PLAN_RATIO_NODES, cw), xytext=(PLAN_RATIO_NODES, ow),
                        arrowprops={"arrowstyle": "<->", "color": "gray"})
            ax.annotate(f"Cloudify / ours at {PLAN_RATIO_NODES:,}:\n{cw / ow:,.0f}× (goal ≥ {PLAN_RATIO_GOAL:.0f}×)",
                        (PLAN_RATIO_NODES, math.sqrt(ow * cw)), textcoords="offset points", xytext=(8, -10),
                        fontsize=9, color="dimgray")
        ax.hlines(PLAN_10K_GOAL_S, 6000, 16000, colors="green", linestyles="--", lw=2,
                  label="goal: ours < 1 s at 10,000 nodes")
        # Slope guides: linear through ours at 1,000 nodes, quadratic through Cloudify's largest measurement.
        gx = [100, max(sizes)]
        if ow:
            ax.plot(gx, [ow * x / PLAN_RATIO_NODES for x in gx], color="gray", lw=0.8, ls="-.", alpha=0.7,
                    label="∝ n (linear), through ours at 1,000")
        cpts = s["fits"][shape]["cloudify_points"]
        if cpts:
            n0, t0 = cpts[-1]
            ax.plot(gx, [t0 * (x / n0) ** 2 for x in gx], color="gray", lw=0.8, ls=(0, (1, 3)), alpha=0.9,
                    label=f"∝ n² (quadratic), through Cloudify at {n0:,}")
        ax.set(xscale="log", yscale="log", xlabel="node templates (one instance each)", ylabel="seconds",
               title=f"parse + validate + plan, {shape} blueprint")
        axm.set(xscale="log", xlabel="node templates", ylabel="MiB",
                title=f"peak memory (RSS) of the plan process, {shape}")
        for a in (ax, axm):
            a.grid(True, which="both", alpha=0.25)
            a.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        axm.legend(fontsize=7.5, loc="upper left")
        axm.set_ylim(0, axm.get_ylim()[1] * 1.3)  # headroom: the legend sits above the data
        ax.set_ylim(1e-3, 3e3)
        ax.set_xlim(70, max(sizes) * 2.2)  # room for the labels of the largest size
        axm.set_xlim(70, max(sizes) * 2.2)
        if col == 0:
            handles, labels = ax.get_legend_handles_labels()
    # One legend for both time panels, above them (the encodings are the same).
    seen: dict[str, Any] = {}
    for h, lab in zip(handles, labels, strict=True):
        seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncols=4, fontsize=8.5,
               title="time panels (top row)", title_fontsize=8.5)
    fig.suptitle(f"orchestrator vs Cloudify local mode: planning (log-log)\n{machine}", fontsize=11)
    path = out / "plan.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)

    # -- engine: bars ----------------------------------------------------------------------
    fig, axes = plt.subplots(1, 3, figsize=(15, 5.2), constrained_layout=True,
                             gridspec_kw={"width_ratios": [1.3, 1, 1]})
    ax = axes[0]
    cases = [c for c in ("flat-1000", "chain-200") if c in s["engine"]]
    width = 0.2
    for i, case in enumerate(cases):
        for j, (sys_, metric) in enumerate([("orchestrator", "per_op_us"), ("orchestrator", "cpu_per_op_us"),
                                            ("cloudify", "per_op_us"), ("cloudify", "cpu_per_op_us")]):
            c = s["engine"][case].get(sys_)
            v = med(c, metric)
            if v is None:
                continue
            x = i + (j - 1.5) * width
            st = c[metric]
            ax.bar(x, v, width, color=COLOR[sys_], alpha=1.0 if metric == "per_op_us" else 0.45,
                   hatch="" if metric == "per_op_us" else "//", edgecolor="white",
                   yerr=[[v - st["min"]], [st["max"] - v]], capsize=2,
                   label=f"{LABEL[sys_]} {'wall' if metric == 'per_op_us' else 'CPU'}" if i == 0 else None)
            ax.annotate(f"{v:,.0f}", (x, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        o, c = s["engine"][case].get("orchestrator"), s["engine"][case].get("cloudify")
        if med(o, "per_op_us") and med(c, "per_op_us"):
            r = med(c, "per_op_us") / med(o, "per_op_us")
            top = max(c[m]["max"] for m in ("per_op_us", "cpu_per_op_us") if c.get(m))
            ax.annotate(f"Cloudify / ours: {r:.1f}× wall\n(goal ≥ {ENGINE_RATIO_GOAL:.0f}×)", (i, top * 1.04),
                        ha="center", va="bottom", fontsize=8.5, color="dimgray")
    ax.axhline(OUR_OP_GOAL_US, color="green", ls="--", lw=1.2, label=f"goal for ours: ≤ {OUR_OP_GOAL_US:.0f} µs/op")
    ax.set_xticks(range(len(cases)), [f"{c}\n(5 no-op operations per node)" for c in cases])
    ax.set(ylabel="µs per operation (install + uninstall)", title="engine overhead per operation, no-op, concurrency 10")
    ax.set_ylim(top=ax.get_ylim()[1] * 1.4)
    ax.legend(fontsize=8, loc="upper left", ncols=2)
    ax.grid(True, axis="y", alpha=0.25)

    ax = axes[1]
    cell = s["engine"].get("sleep-100", {})
    o = cell.get("orchestrator")
    if o:
        ideal = {"install_s": med(o, "ideal_install_s"), "uninstall_s": med(o, "ideal_uninstall_s")}
        for i, metric in enumerate(("install_s", "uninstall_s")):
            ax.bar(i - width, ideal[metric], width, color="lightgray", edgecolor="gray",
                   label="ideal" if i == 0 else None)
            ax.annotate(f"{ideal[metric]:.2f}", (i - width, ideal[metric]), textcoords="offset points",
                        xytext=(0, 3), ha="center", fontsize=8)
            for j, sys_ in enumerate(SYSTEMS):
                c = cell.get(sys_)
                v = med(c, metric)
                if v is None:
                    continue
                st = c[metric]
                x = i + j * width
                ax.bar(x, v, width, color=COLOR[sys_], yerr=[[v - st["min"]], [st["max"] - v]], capsize=2,
                       label=f"{LABEL[sys_]} (median, min–max)" if i == 0 else None)
                ax.annotate(f"{v:.3f}\n+{(v / ideal[metric] - 1) * 100:.0f}%", (x, st["max"]),
                            textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
        ax.plot([-2 * width, 2 * width], [ideal["install_s"] * (1 + SLEEP_GOAL)] * 2, color="green", ls="--",
                lw=1.2, label=f"goal: install ≤ ideal + {SLEEP_GOAL * 100:.0f} %")
        ax.set_xticks([0, 1], ["install\n(3 ops/node)", "uninstall\n(2 ops/node)"])
        ax.set(ylabel="seconds", title="100 flat nodes, 50 ms operations, concurrency 50")
        ax.set_ylim(top=ax.get_ylim()[1] * 1.2)
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(True, axis="y", alpha=0.25)

    ax = axes[2]
    cases = [c for c in ("flat-1000", "chain-200", "sleep-100") if c in s["engine"]]
    for i, case in enumerate(cases):
        for j, sys_ in enumerate(SYSTEMS):
            c = s["engine"][case].get(sys_)
            v, base = med(c, "peak_rss_mb"), med(c, "rss_after_import_mb")
            if v is None:
                continue
            x = i + (j - 0.5) * 0.35
            ax.bar(x, v, 0.35, color=COLOR[sys_], label=LABEL[sys_] if i == 0 else None)
            if base:
                ax.bar(x, base, 0.35, color="white", alpha=0.35, hatch="..", edgecolor=COLOR[sys_],
                       label="of which: after imports" if i == 0 and j == 0 else None)
            ax.annotate(f"{v:.0f}", (x, v), textcoords="offset points", xytext=(0, 3), ha="center", fontsize=8)
    ax.set_xticks(range(len(cases)), cases)
    ax.set(ylabel="MiB", title="peak memory (RSS) of install + uninstall")
    ax.legend(fontsize=8, loc="upper right")
    ax.grid(True, axis="y", alpha=0.25)
    fig.suptitle(f"orchestrator vs Cloudify local mode: install + uninstall\n{machine}", fontsize=11)
    path = out / "engine.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    written.append(path)
    return written


def render(json_path: Path, out: Path) -> list[Path]:
    data = json.loads(Path(json_path).read_text())
    s = analyse(data)
    gl = goals(s) + day2_report.goals(data) + plugins_report.goals(data) + state_report.goals(data)
    images = plots(s, out, data["meta"], data["rows"])
    md = out / "latest.md"
    md.write_text(markdown(data, s, gl, [p.name for p in images])
                  + "\n".join(day2_report.section(data) + plugins_report.section(data)
                            + state_report.section(data)))
    return [Path(json_path), md, *images]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("json", nargs="?", default=str(HERE / "results" / "latest.json"))
    ap.add_argument("--out", help="directory for latest.md and the PNGs (default: beside the JSON)")
    args = ap.parse_args()
    out = Path(args.out) if args.out else Path(args.json).parent
    for p in render(Path(args.json), out):
        print(p)


if __name__ == "__main__":
    main()
