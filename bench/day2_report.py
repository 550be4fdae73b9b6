"""The day-2 figures of ``make bench``: ``plan -d`` and a no-change ``update`` of 1,000 nodes.

``bench/run.py`` stores ``day2_bench`` rows in ``latest.json`` under ``day2``;
``report.py`` adds these goals and this section to ``latest.md``.
"""

from __future__ import annotations

from typing import Any

GOAL_S = 1.0  # issue 15: each under 1 s at 1,000 nodes


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in data.get("day2") or []:
        if "error" in r:
            continue
        what = "the diff (`plan -d`)" if r["case"] == "plan -d" else "a no-change `update`"
        out.append({"goal": f"{what} of a {r['nodes']:,}-node deployment < {GOAL_S:g} s",
                    "measured": f"{r['median_s']:.3f} s (CPU {r['cpu_median_s']:.3f} s)",
                    "met": r["median_s"] < GOAL_S,
                    "miss": f"{what} of {r['nodes']:,} nodes takes {r['median_s']:.2f} s"})
    return out


def section(data: dict[str, Any]) -> list[str]:
    rows = [r for r in data.get("day2") or [] if "error" not in r]
    if not rows:
        return []
    lines = ["", "### Day 2: plan against a deployment, no-change update", "",
             "`bench/day2_bench.py`: a deployment of no-op nodes installed once, then in the same process "
             "`Orchestrator.propose` (load, validate, plan with kept ids, diff of every instance) and "
             "`prepare_update` + `run()` of the same blueprint (lock, nothing to do, execution recorded).", "",
             "| case | nodes | median | min | CPU (median) |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r['case']} | {r['nodes']:,} | {r['median_s']:.3f} s | {r['min_s']:.3f} s | "
              f"{r['cpu_median_s']:.3f} s |" for r in rows]
    return [*lines, ""]
