"""The state-store figures of ``make bench``: many CLIs on one PostgreSQL (and on one SQLite file).

``bench/run.py`` stores ``postgres_bench`` results in ``latest.json`` under ``state``;
``report.py`` adds these goals and this section to ``latest.md``.
"""

from __future__ import annotations

from typing import Any


def goals(data: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for r in data.get("state") or []:
        if r.get("store") != "postgres" or "error" in r:
            continue
        bad = len(r["problems"]) + len(r["failures"]) + r["deadlocks"]
        out.append({"goal": f"{r['deployments']} deployments installed from {r['clis']} CLI processes on one "
                            f"PostgreSQL: no lost update, no deadlock, every lock released",
                    "measured": f"{r['install_wall_s']:.1f} s wall; {len(r['problems'])} lost updates or "
                                f"unreleased locks, {r['deadlocks']} deadlocks, {len(r['failures'])} failed CLIs",
                    "met": bad == 0,
                    "miss": f"{bad} problems: {(r['problems'] + [f['stderr'] for f in r['failures']])[:3]}"})
    return out


def section(data: dict[str, Any]) -> list[str]:
    rows = [r for r in data.get("state") or [] if "error" not in r]
    if not rows:
        return []
    lines = ["", "### State: many CLIs on one database", "",
             f"`bench/postgres_bench.py`: {rows[0]['deployments']} deployments ({rows[0]['instances_per_deployment']} "
             f"instances, {rows[0]['hook_calls_per_install']} hook calls each), each installed by its own "
             f"`orchestrator` process, {rows[0]['clis']} at a time; then {rows[0]['clis']} CLIs at once on one "
             "deployment; then every uninstall. A CLI's wall time is mostly Python start-up on a shared "
             "machine; *workflow* is the time the CLI reports for the install itself.", "",
             "| state | install wall | CPU of the CLIs | workflow median / max | contended: ran / refused "
             "| uninstall wall | problems |", "| --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['store']} | {r['install_wall_s']:.1f} s | {r['install_cpu_s']:.0f} s | "
                     f"{r['install_workflow_median_s']:.2f} / {r['install_workflow_max_s']:.2f} s | "
                     f"{r['contended_ran']} / {r['contended_refused']} | {r['uninstall_wall_s']:.1f} s | "
                     f"{len(r['problems']) + len(r['failures']) + r['deadlocks']} |")
    return [*lines, ""]
