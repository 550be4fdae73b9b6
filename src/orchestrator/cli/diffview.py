"""Showing a diff against a deployment (``plan -d``, ``update``) and a drift report.

Plain text when piped, the same lines coloured on a terminal (rich), or JSON. Values are
cut to 200 characters on one line, and secrets never appear: a plan holds
``{get_secret: NAME}``, shown as ``<secret:NAME>``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from orchestrator.cli.output import printable
from orchestrator.diff import ABSENT, Change, Diff

SYMBOL = {"create": "+", "update": "~", "replace": "-/+", "delete": "-"}
STYLE = {"create": "green", "update": "yellow", "replace": "magenta", "delete": "red"}
MAX_SHOWN = 200


def shown(value: Any) -> str:
    """A value as it reads in a diff: JSON, secrets as ``<secret:NAME>``, one line, cut."""
    if value is ABSENT:
        return "(absent)"
    text = json.dumps(_masked(value), default=str, ensure_ascii=False)
    return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 1] + "…"


def _masked(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1 and "get_secret" in value:
            args = value["get_secret"]
            return f"<secret:{args if isinstance(args, str) else '.'.join(map(str, args))}>"
        return {k: _masked(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(v) for v in value]
    return value


def diff_data(diff: Diff, blueprint: str) -> dict[str, Any]:
    return {
        "deployment": diff.deployment,
        "blueprint": blueprint,
        "summary": {**diff.counts(), "unchanged": len(diff.unchanged)},
        "changes": [_change_data(c) for c in diff.changes],
        "outputs": {name: {"old": None if old is ABSENT else _masked(old), "new": None if new is ABSENT else
                           _masked(new), "added": old is ABSENT, "removed": new is ABSENT}
                    for name, (old, new) in diff.outputs.items()},
    }


def _change_data(change: Change) -> dict[str, Any]:
    data: dict[str, Any] = {"instance": change.instance, "node": change.node, "type": change.type,
                            "action": change.action}
    if change.reason:
        data["reason"] = change.reason
    if change.properties:
        data["properties"] = [{"path": p.path, "old": None if p.old is ABSENT else _masked(p.old),
                               "new": None if p.new is ABSENT else _masked(p.new),
                               **({"added": True} if p.added else {}), **({"removed": True} if p.removed else {})}
                              for p in change.properties]
    for kind in ("added", "removed", "relink"):
        if getattr(change, kind):
            data.setdefault("relationships", {})[kind] = getattr(change, kind)
    return data


def diff_lines(diff: Diff, blueprint: str, title: str = "") -> list[tuple[str, str]]:
    """``(text, style)`` lines of the diff, in instance order; ``title`` heads it instead of
    "Plan for BLUEPRINT against deployment ..." (heal, scale)."""
    counts = diff.counts()
    lines: list[tuple[str, str]] = []
    if diff.empty:
        if title:
            return [(f"{title}: nothing to do ({len(diff.unchanged)} instances).", "bold")]
        return [(f"No changes: deployment '{diff.deployment}' matches {blueprint} "
                 f"({len(diff.unchanged)} instances).", "bold")]
    summary = ", ".join(f"{n} to {action}" for action, n in counts.items() if n) or "no instance changes"
    head = title or f"Plan for {blueprint} against deployment '{diff.deployment}'"
    lines.append((f"{head}: {summary}; {len(diff.unchanged)} unchanged", "bold"))
    lines.append(("", ""))
    width = max((len(c.instance) for c in diff.changes), default=8)
    for change in diff.changes:
        action = change.action
        head = f"{change.action}" + (f" ({change.reason})" if change.reason else "")
        if action == "update" and not change.properties and not change.added and not change.removed:
            head = "relink"
        lines.append((f"  {SYMBOL[action]:>3} {change.instance:<{width}}  {change.type}  {head}", STYLE[action]))
        for prop in change.properties:
            lines.append((f"        {prop.path}: {shown(prop.old)} -> {shown(prop.new)}", ""))
        for key in change.added:
            lines.append((f"        + relationship {key}", "green"))
        for key in change.removed:
            lines.append((f"        - relationship {key}", "red"))
        for key in change.relink:
            lines.append((f"        ↻ relationship {key}: its hooks run again (the target is replaced)", "yellow"))
    if diff.outputs:
        lines.append(("", ""))
        lines.append(("outputs:", "bold"))
        for name, (old, new) in diff.outputs.items():
            mark = "+" if old is ABSENT else "-" if new is ABSENT else "~"
            lines.append((f"  {mark} {name}: {shown(old)} -> {shown(new)}", ""))
    return lines


def print_diff(diff: Diff, blueprint: str, *, err: bool = False, title: str = "") -> None:
    lines = diff_lines(diff, blueprint, title)
    if not err and click.get_text_stream("stdout").isatty():
        from rich.console import Console
        from rich.text import Text

        console = Console(highlight=False)
        for text, style in lines:
            console.print(Text(text, style=style or ""))
        return
    for text, _ in lines:
        click.echo(text, err=err)


# -- drift ------------------------------------------------------------------------------


def drift_status(result: Any) -> str:
    if result is None:
        return "in sync"
    if result == "gone" or (isinstance(result, dict) and "gone" in result):
        return "gone"
    return "drifted"


def drift_data(deployment: str, checked: list[dict[str, Any]], failed: list[Any]) -> dict[str, Any]:
    summary = {s: sum(1 for c in checked if c["status"] == s) for s in ("in sync", "drifted", "gone")}
    summary["failed"] = len(failed)
    return {"deployment": deployment, "summary": summary, "instances": checked,
            "failures": [{"instance": f.instance, "plugin": f.plugin, "message": f.message} for f in failed]}


def print_drift(data: dict[str, Any]) -> None:
    summary = data["summary"]
    parts = [f"{n} {s}" for s, n in summary.items() if n]
    click.echo(f"drift of deployment '{data['deployment']}': {', '.join(parts) or 'nothing to check'}")
    width = max((len(c["instance"]) for c in data["instances"]), default=8)
    for item in data["instances"]:
        if item["status"] == "in sync":
            continue
        detail = ""
        differences = item.get("differences")
        if item["status"] == "gone":
            why = differences.get("gone") if isinstance(differences, dict) else None
            detail = why if isinstance(why, str) else ""
        elif isinstance(differences, dict):
            detail = "; ".join(f"{k}: {shown(v)}" for k, v in differences.items())
        click.echo(f"  {item['instance']:<{width}}  {item['type']}  {item['status']}"
                   + (f"  {printable(detail)}" if detail else ""))
    for failure in data["failures"]:
        click.echo(f"  {failure['instance']}: check_drift ({failure['plugin'] or 'no plugin'}) failed: "
                   f"{printable(str(failure['message']))}", err=True)
