"""The live view of a running workflow on a terminal (rich), fed by engine events.

Instances are shown by wave: pending, running (operation and elapsed time), retrying,
failed or done. Large deployments show one line per wave plus the instances that are
active or failed, so the view fits the screen at any size.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from orchestrator.cli.output import printable
from orchestrator.engine.events import Event
from orchestrator.engine.workflows import Workflow

STYLES = {"pending": "dim", "running": "cyan", "retrying": "yellow", "failed": "bold red", "done": "green"}
ICONS = {"pending": "·", "running": "▶", "retrying": "↻", "failed": "✗", "done": "✓"}
FULL_LISTING = 40  # instances; above this only active and failed ones are listed


class _Row:
    __slots__ = ("detail", "op", "since", "status")

    def __init__(self) -> None:
        self.status = "pending"
        self.op = ""
        self.since = 0.0
        self.detail = ""


class LiveProgress:
    """A listener that keeps per-instance status and renders it with ``rich.live``."""

    def __init__(self, workflow: Workflow, console: Console | None = None) -> None:
        self.workflow = workflow.name
        self.console = console or Console(stderr=False)
        several = len(workflow.phases) > 1
        self.waves: list[tuple[str, list[str]]] = []  # (label, instances), in the order they run
        self.types: dict[str, str] = {}
        for phase in workflow.phases:
            for n, wave in enumerate(phase.waves(), start=1):
                self.waves.append((f"{phase.name} · wave {n}" if several else f"wave {n}", wave))
            for iid in phase.instances():
                self.types.setdefault(iid, phase.plan.nodes[phase.plan.instances[iid].node].type)
        self.rows = {iid: _Row() for iid in self.types}
        self.logs: list[str] = []
        self.started = time.monotonic()
        self.stopping = False  # a stop was requested: no new operations start
        self._lock = threading.Lock()
        self._live: Live | None = None

    def __enter__(self) -> LiveProgress:
        self._live = Live(self, console=self.console, refresh_per_second=8, transient=False)
        self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def __call__(self, event: Event) -> None:
        if event.type == "workflow_cancelling":  # said above the view, where it stays readable
            self.stopping = True
            if self._live is not None:
                self._live.console.print(Text(printable(event.message), style="bold yellow"))
            return
        if event.instance is None or event.instance not in self.rows:
            return
        with self._lock:
            row = self.rows[event.instance]
            if event.type == "operation_started":
                row.status, row.op, row.since, row.detail = "running", event.operation or "", time.monotonic(), ""
            elif event.type == "operation_retrying":
                row.status, row.detail = "retrying", printable(event.message)
            elif event.type == "operation_failed":
                row.status, row.detail = "failed", printable(event.message)
            elif event.type == "instance_finished":
                row.status, row.op, row.detail = "done", "", ""
            elif event.type == "log":
                self.logs = [*self.logs[-4:], f"{event.instance}: {printable(event.message.splitlines()[0][:100])}"]

    def __rich__(self) -> Group:
        with self._lock:
            return Group(self._header(), self._table(), *self._log_lines())

    def _counts(self, ids: list[str]) -> dict[str, int]:
        counts = dict.fromkeys(STYLES, 0)
        for iid in ids:
            counts[self.rows[iid].status] += 1
        return counts

    def _header(self) -> Text:
        counts = self._counts(list(self.rows))
        text = Text(f"{self.workflow} · {time.monotonic() - self.started:5.1f}s · ", style="bold")
        if self.stopping:
            text.append("stopping · ", style="bold yellow")
        for status in ("done", "running", "retrying", "failed", "pending"):
            if counts[status]:
                text.append(f"{counts[status]} {status}  ", style=STYLES[status])
        return text

    def _table(self) -> Table:
        table = Table(box=None, show_header=False, pad_edge=False)
        table.add_column(width=2)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, style="dim")
        table.add_column(no_wrap=True)
        now = time.monotonic()
        full = len(self.rows) <= FULL_LISTING
        for label, wave in self.waves:
            counts = self._counts(wave)
            table.add_row("", Text(label, style="bold"), f"{counts['done']}/{len(wave)} done", "")
            for iid in wave:
                row = self.rows[iid]
                if not full and row.status in ("pending", "done"):
                    continue
                detail = row.detail
                if row.status == "running":
                    detail = f"{row.op} {now - row.since:4.1f}s"
                elif row.status == "retrying":
                    detail = f"{row.op}: {row.detail}"
                table.add_row(Text(ICONS[row.status], style=STYLES[row.status]), iid, self.types[iid],
                              Text(detail[:90], style=STYLES[row.status]))
        return table

    def _log_lines(self) -> list[Text]:
        return [Text(f"  {line}", style="dim") for line in self.logs]
