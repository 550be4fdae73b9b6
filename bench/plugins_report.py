"""The plugin figures of ``make bench``: command-line start-up with every plugin, and AWS on moto.

``bench/run.py`` stores them in ``latest.json`` under ``plugins`` (``cli_bench`` and
``aws_bench`` rows); ``report.py`` adds these goals and this section to ``latest.md``.
"""

from __future__ import annotations

import statistics
from typing import Any

CLI_GOAL_S = 0.150  # issue 18: plan / status of a one-node blueprint, all three distributions installed
AWS_GOAL_S = 3.0  # issue 18: 50 instances on moto at concurrency 10, install and uninstall each


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    found = data.get("plugins") or {}
    out = []
    for row in found.get("cli") or []:
        if row["case"] in ("plan", "status"):
            ms = row["median_s"] * 1000
            base = next((r["median_s"] * 1000 for r in found["cli"] if r["case"] == "plan, no plugin"), None)
            note = f"; without any plugin {base:.0f} ms" if base is not None and row["case"] == "plan" else ""
            out.append({"goal": f"`orchestrator {row['case']}` of one node, every plugin installed, "
                                f"≤ {CLI_GOAL_S * 1000:.0f} ms",
                        "measured": f"{ms:.0f} ms{note}", "met": row["median_s"] <= CLI_GOAL_S,
                        "miss": f"`orchestrator {row['case']}` takes {ms:.0f} ms; the core's own imports take most "
                                f"of it (see the plugin section)"})
    aws = [r for r in found.get("aws") or [] if "error" not in r]
    for key in ("install_s", "uninstall_s"):
        if aws:
            warm = [r[key] for r in aws[1:]] or [aws[0][key]]
            median = statistics.median(warm)
            out.append({"goal": f"AWS on moto, {aws[0]['instances']} instances at concurrency "
                                f"{aws[0]['concurrency']}: {key[:-2]} ≤ {AWS_GOAL_S:g} s",
                        "measured": f"{median:.2f} s (first run, cold: {aws[0][key]:.2f} s)",
                        "met": median <= AWS_GOAL_S,
                        "miss": f"the AWS {key[:-2]} of {aws[0]['instances']} instances takes {median:.2f} s"})
    return out


def section(data: dict[str, Any]) -> list[str]:
    found = data.get("plugins") or {}
    if not found:
        return []
    lines = ["", "### Plugins: start-up and AWS on moto", ""]
    if found.get("cli"):
        lines += ["Fresh `orchestrator` processes on a one-node blueprint with the core, both plugins and the "
                  "example plugin installed (`bench/cli_bench.py`). Plugins import boto3 and the Docker SDK "
                  "only when an operation needs them; `plan, no plugin` (`ORCHESTRATOR_PLUGINS=none`) is the "
                  "core alone.", "", "| command | median | min |", "| --- | ---: | ---: |"]
        lines += [f"| {r['case']} | {r['median_s'] * 1000:.0f} ms | {r['min_s'] * 1000:.0f} ms |" for r in found["cli"]]
        lines += [""]
    aws = found.get("aws") or []
    if aws:
        lines += ["A key pair, a security group with two rules, n EC2 instances and an elastic IP on a moto server "
                  "over HTTP (`bench/aws_bench.py`), one process, fresh deployment each run.", "",
                  "| run | instances | concurrency | install | uninstall |", "| ---: | ---: | ---: | ---: | ---: |"]
        lines += [f"| {n + 1} | {r['instances']} | {r['concurrency']} | {r['install_s']:.2f} s | "
                  f"{r['uninstall_s']:.2f} s |" for n, r in enumerate(aws) if "error" not in r]
        lines += [""]
    return lines
