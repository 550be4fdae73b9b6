"""The conformance report: a pytest plugin printing every check's result at the end of the run."""

from __future__ import annotations

from typing import Any

import attrs
import pytest

from .checks import CHECK_IDS
from .results import CheckResult, format_report

_REPORT = "orchestrator-conformance-report"
_WORKER_OUTPUT = "orchestrator_conformance"


class _Report:
    """Collects results; prints the report in pytest's terminal summary.

    Under pytest-xdist each worker sends its results to the controller (``workeroutput``),
    which prints one report for the whole run.
    """

    def __init__(self) -> None:
        self.results: list[CheckResult] = []

    def pytest_sessionfinish(self, session: Any) -> None:
        output = getattr(session.config, "workeroutput", None)
        if output is not None and self.results:
            output[_WORKER_OUTPUT] = [attrs.asdict(r) for r in self.results]

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> None:
        rows = (getattr(node, "workeroutput", None) or {}).get(_WORKER_OUTPUT) or []
        self.results.extend(CheckResult(**row) for row in rows)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if self.results:
            subjects = list(dict.fromkeys(r.subject for r in self.results))
            ordered = sorted(self.results, key=lambda r: (subjects.index(r.subject), CHECK_IDS.index(r.check)))
            terminalreporter.section("plugin conformance")
            terminalreporter.write_line(format_report(ordered))


def reporter(config: Any) -> _Report:
    """The run's report plugin, registered on first use (``orchestrator.testing`` registers it at
    configure time, so an xdist controller has one to collect its workers' results)."""
    report = config.pluginmanager.get_plugin(_REPORT)
    if report is None:
        report = _Report()
        config.pluginmanager.register(report, _REPORT)
    return report
