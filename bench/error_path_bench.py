"""Validate time and peak memory of a large blueprint with one problem, beside the valid one.

    python bench/error_path_bench.py [--nodes 50000] [--runs 3] [--json]

The goal (issue 14): a blueprint with one error costs at most 1.3x the time and the
peak RSS of the same blueprint without it. Each run is a fresh process that imports
the orchestrator (outside the timing), then times ``Orchestrator.load`` (read, parse,
validate, resolve; on a problem, settle its position) and reads its peak RSS. The
problems are planted in the middle of the file, in several places the loader looks at.
Runs go in rounds (each case once per round) and the minimum is kept, so a busy
machine skews every case alike; CPU time is shown beside wall time for the same reason.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from generate import generate  # noqa: E402
from measure import Clock, peak_rss_mb, run_child  # noqa: E402

ERRORS = {  # name -> (text in the middle template, replacement)
    "unknown property": ("      size: {get_input: size}\n", "      size: {get_input: size}\n      sise: 1\n"),
    "wrong value type": ("      size: {get_input: size}\n", "      size: {get_input: size}\n      port: eighty\n"),
    "unknown node type": ("    type: bench.Node\n", "    type: bench.Nod\n"),
    "undeclared input": ("      size: {get_input: size}\n", "      size: {get_input: sizes}\n"),
}


def plant(text: str, nodes: int, old: str, new: str) -> str:
    """``text`` with ``old`` replaced by ``new`` once, in template ``n{nodes // 2}``."""
    at = text.index(f"  n{nodes // 2}:\n")
    return text[:at] + text[at:].replace(old, new, 1)


def measure_one(path: str) -> dict[str, Any]:
    from orchestrator.deployments import Orchestrator
    from orchestrator.dsl import BlueprintError
    from orchestrator.plugins import get_plugin_manager

    orch = Orchestrator(pm=get_plugin_manager(entry_points=False))
    problems: list[str] = []
    with Clock() as load:
        try:
            orch.load(path)
        except BlueprintError as exc:
            problems = [str(p) for p in exc.problems]
    return {"load_s": load.wall, "cpu_s": load.cpu, "peak_rss_mb": peak_rss_mb(), "problems": problems}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=50_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one)))
        return
    with tempfile.TemporaryDirectory(prefix="orch-error-bench-") as tmp:
        valid = generate("flat", args.nodes)
        cases = {"valid": valid} | {name: plant(valid, args.nodes, *edit) for name, edit in ERRORS.items()}
        paths = {}
        for name, text in cases.items():
            paths[name] = Path(tmp) / f"{name.replace(' ', '-')}.yaml"
            paths[name].write_text(text)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in cases}
        for _ in range(args.runs):  # rounds, every case once each: a busy spell hits all alike
            for name, path in paths.items():
                row = run_child([sys.executable, str(Path(__file__).resolve()), "--one", str(path)])
                if "error" in row:
                    raise SystemExit(f"{name}: {row['error']}\n{row.get('stderr', '')}")
                runs[name].append(row)
    rows = []
    for name, measured in runs.items():
        problems = measured[0]["problems"]
        if (name == "valid") != (not problems):
            raise SystemExit(f"{name}: unexpected problems {problems[:3]}")
        rows.append({"case": name, "nodes": args.nodes, "load_s": min(r["load_s"] for r in measured),
                     "cpu_s": min(r["cpu_s"] for r in measured),
                     "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in measured),
                     "problem": problems[0].split(":", 1)[1] if problems else ""})
    base = rows[0]
    for row in rows:
        row["time_x"] = row["load_s"] / base["load_s"]
        row["cpu_x"] = row["cpu_s"] / base["cpu_s"]
        row["rss_x"] = row["peak_rss_mb"] / base["peak_rss_mb"]
    if args.json:
        print(json.dumps(rows, indent=2))
        return
    for row in rows:
        print(f"{row['case']:18} wall {row['load_s']:5.2f}s ({row['time_x']:.2f}x)  cpu {row['cpu_s']:5.2f}s"
              f" ({row['cpu_x']:.2f}x)  peak {row['peak_rss_mb']:4.0f} MB ({row['rss_x']:.2f}x)"
              f"  {row['problem'][:70]}", flush=True)


if __name__ == "__main__":
    main()
