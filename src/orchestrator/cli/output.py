"""Rendering command results as text or JSON; no logic beyond presentation."""

from __future__ import annotations

import json
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TextIO

import click

if TYPE_CHECKING:
    from orchestrator.engine.events import Event
    from orchestrator.engine.results import ExecutionResult
    from orchestrator.plan import Plan
    from orchestrator.state import LockInfo


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(text: str) -> str:
    """``text`` safe for a terminal: what a plugin or a resource wrote (a log line, an error, a
    container's output) may hold escape sequences that clear the screen, set the title, write
    the clipboard, or a carriage return that writes over the line; each control character is
    shown as its escape (``\\x1b``, ``\\r``). Newlines and tabs stay. ``--json`` needs none of
    this: JSON escapes them itself."""
    if _CONTROL.search(text) is None:
        return text
    return _CONTROL.sub(lambda m: repr(m.group())[1:-1], text)


def echo_json(data: Any) -> None:
    from orchestrator import jsonable

    click.echo(jsonable.dumps(data, indent=2))


def plan_data(plan: Plan, implemented: Any) -> dict[str, Any]:
    from orchestrator.engine.workflows import install_steps

    waves = []
    for wave in plan.waves():
        items = []
        for iid in wave:
            inst = plan.instances[iid]
            node = plan.nodes[inst.node]
            ops = []
            for step in install_steps(inst):
                rel = inst.relationships[step.relationship] if step.relationship is not None else None
                owner = rel.owner if rel else node.owner
                if implemented(owner, step.op):
                    ops.append(f"{step.op}({rel.target_id})" if rel else step.op)
            items.append({"instance": iid, "node": inst.node, "type": node.type, "plugin": node.owner,
                          "depends_on": sorted(set(inst.targets)), "operations": ops})
        waves.append(items)
    return {"instances": len(plan.instances),
            "relationships": sum(len(i.relationships) for i in plan.instances.values()),
            "waves": waves}


def print_plan(data: dict[str, Any], display: str) -> None:
    waves = data["waves"]
    click.echo(f"Plan for {display}: {data['instances']} node instances, {data['relationships']} relationships, "
               f"{len(waves)} waves")
    for n, wave in enumerate(waves, start=1):
        click.echo(f"\nwave {n}")
        width = max(len(i["instance"]) for i in wave)
        for item in wave:
            ops = ", ".join(item["operations"]) or "(nothing to run)"
            click.echo(f"  {item['instance']:<{width}}  {item['type']}  {ops}")


def format_event(e: Event | Any) -> str:
    stamp = time.strftime("%H:%M:%S", time.localtime(e.ts)) + f".{int(e.ts % 1 * 1000):03d}"
    where = e.instance or ""
    if e.operation:
        where += f".{e.operation}"
    where = f" {where}" if where else ""
    plugin = f" [{e.plugin}]" if e.plugin and e.type != "log" else ""
    level = f" {e.level.upper()}" if e.type == "log" else ""
    return f"{stamp}{where}{plugin}{level} {printable(e.message)}"


_print_lock = threading.Lock()
_json_out: TextIO | None = None  # where JSON goes while a run holds stdout for it


@contextmanager
def stdout_for_json_only(active: bool = True) -> Iterator[None]:
    """While a ``--json`` run goes (``active``), file descriptor 1 leads to stderr and the JSON
    goes to a copy of what it was: what a process started by a hook prints (it writes to the
    file descriptor, past ``sys.stdout``) cannot land between the JSON lines, or before the
    document. A hook's own ``print()`` becomes a log event (``engine.hook_output``)."""
    global _json_out
    if not active:
        yield
        return
    try:
        sys.stdout.flush()
        fd, err = sys.stdout.fileno(), sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (click's test runner): nothing to guard
        yield
        return
    own = os.dup(fd)
    os.dup2(err, fd)
    _json_out = open(own, "w", encoding=sys.stdout.encoding or "utf-8", closefd=False)  # noqa: SIM115
    try:
        yield
    finally:
        with _print_lock:
            out, _json_out = _json_out, None
            for stream in (out, sys.stdout):  # what a thread left in sys.stdout's buffer goes to stderr too
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass
            os.dup2(own, fd)
            os.close(own)


def _to_stdout(text: str) -> None:
    """Print a line of a live run; when the reader has gone (``| head``), the run goes on and the
    rest of its output is dropped (stdout now leads to /dev/null, so no later print fails)."""
    with _print_lock:
        out = _json_out or sys.stdout
        try:
            out.write(text)
            out.flush()
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)


def plain_listener(event: Event) -> None:
    _to_stdout(format_event(event) + "\n")


def json_listener(event: Event) -> None:
    _to_stdout(json.dumps(event.as_dict(), default=str) + "\n")


def stop_notice_listener(event: Event) -> None:
    """Stop requests and abandoned hooks are said on stderr whatever the output mode."""
    if event.type == "workflow_cancelling":
        with _print_lock:
            click.echo(event.message, err=True)


def lock_data(lock: LockInfo) -> dict[str, Any]:
    return {"execution": lock.execution, "workflow": lock.workflow, "pid": lock.pid, "host": lock.host,
            "acquired_at": lock.acquired_at, "expires_at": lock.expires_at}


def print_summary(result: ExecutionResult, debug: bool) -> None:
    verb = {"succeeded": "succeeded", "failed": "FAILED", "cancelled": "was cancelled"}[result.status]
    left = result.left_behind
    if result.ok and result.failures:
        verb = "finished, ignoring failures,"
    err = result.status != "succeeded" or bool(result.failures) or result.unended
    click.echo(f"{result.workflow} of deployment '{result.deployment}' {verb} in {result.duration:.2f}s "
               f"({result.operations} operations, {len(result.failures)} failed)", err=err)
    for note in result.notes:
        click.echo(f"  {printable(note)}", err=True)
    for failure in result.failures:
        click.echo(f"  {printable(str(failure))}", err=True)
        if debug and failure.traceback:
            click.echo(printable(failure.traceback), err=True)
    if result.abandoned:
        click.echo(f"  abandoned while running (recorded as in progress; a rerun runs them again): "
                   f"{'; '.join(result.abandoned)}", err=True)
    if left:
        click.echo(f"  may have been left behind: {', '.join(sorted({f.instance for f in left}))} "
                   f"(their runtime properties are kept; 'status' lists them, a rerun of uninstall retries them)",
                   err=True)


def execute_data(prepared: Any, operation: str, result: ExecutionResult) -> dict[str, Any]:
    """Per selected instance (in plan order), what the custom operation returned or why it failed."""
    plan, steps = prepared.plan, prepared.steps
    failures = {f.instance: f for f in result.failures}
    items = []
    for iid in steps.phases[0].instances():
        item: dict[str, Any] = {"instance": iid, "node": plan.instances[iid].node}
        if iid in failures:
            item.update(status="failed", error=failures[iid].message)
        elif iid in result.results:
            item.update(status="succeeded", result=result.results[iid])
        else:
            item.update(status="not run")
        items.append(item)
    counts = {s: sum(1 for i in items if i["status"] == s) for s in ("succeeded", "failed", "not run")}
    return {"deployment": result.deployment, "operation": operation, "execution": result.execution,
            "status": result.status, "duration": round(result.duration, 3), "results": items, "summary": counts}


def _result_text(value: Any) -> str:
    if value is None:
        return "done"
    if isinstance(value, str):
        return value
    compact = json.dumps(value, ensure_ascii=False, default=str)
    return compact if len(compact) <= 100 else json.dumps(value, indent=2, ensure_ascii=False, default=str)


def print_execute(data: dict[str, Any], result: ExecutionResult, debug: bool) -> None:
    """Each instance's result (a text as it is, other values as JSON), then one summary line."""
    shown = printable if sys.stdout.isatty() else str  # into a file or a pipe the text goes as it is
    for item in data["results"]:
        if item["status"] == "succeeded":
            text = shown(_result_text(item["result"]).rstrip("\n"))
            if "\n" in text:
                click.echo(f"{item['instance']}:")
                click.echo("\n".join(f"  {line}" for line in text.split("\n")))
            else:
                click.echo(f"{item['instance']}: {text}")
        elif item["status"] == "failed":
            click.echo(f"{item['instance']}: FAILED: {printable(str(item['error']))}", err=True)
        else:
            click.echo(f"{item['instance']}: not run (the execution stopped first)", err=True)
    summary = data["summary"]
    parts = [f"{summary['succeeded']} succeeded"] + [f"{summary[k]} {k}" for k in ("failed", "not run") if summary[k]]
    # on stderr: stdout holds only the results (``execute ... > out.txt``)
    click.echo(f"{data['operation']} on {len(data['results'])} instance{'s' if len(data['results']) != 1 else ''} "
               f"of deployment '{data['deployment']}': {', '.join(parts)} in {result.duration:.2f}s", err=True)
    for note in result.notes:
        click.echo(f"  {printable(note)}", err=True)
    if debug:
        for failure in result.failures:
            if failure.traceback:
                click.echo(printable(failure.traceback), err=True)


def print_operations(deployment: str, nodes: list[dict[str, Any]]) -> None:
    """Per node template, its operations with a line per input (type, default, description)."""
    if not nodes:
        click.echo(f"deployment '{deployment}': its node types declare no custom operations")
        return
    click.echo(f"deployment '{deployment}'")
    for node in nodes:
        started = len(node["started"])
        click.echo(f"  {node['node']} ({node['type']}, {started} of {node['instances']} instances started)")
        width = max(len(op["name"]) for op in node["operations"])
        for op in node["operations"]:
            click.echo(f"    {op['name']:<{width}}  {op['description']}".rstrip())
            for name, spec in op["inputs"].items():
                kind = spec["type"] or "any"
                extra = " (required)" if spec["required"] else (
                    f" = {json.dumps(spec['default'], default=str)}" if "default" in spec else "")
                desc = f"  {spec['description']}" if spec.get("description") else ""
                click.echo(f"    {'':<{width}}    -p {name}: {kind}{extra}{desc}")
