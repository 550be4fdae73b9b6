"""Conformance v2 catches the bugs the v1 suite let through (issue 18).

A third-party author's process plugin (``process_plugin``: local TCP servers) was broken
on purpose three ways, and each broken version passed v1, which injected faults into
``create`` only. Each is caught now by the check for its class of bug, while the correct
version passes everything, and the checks v1 had still pass for the broken ones (they
were not looking).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from process_plugin import kill, owner_arg, plugin, processes

from orchestrator.conformance import FAIL, PASS, SKIP, Env, Subject, conformance_tests, run_checks
from orchestrator.engine.runner import Options

V1_CHECKS = ("create_twice", "crash_in_create", "crash_then_uninstall", "retry_before_create",
             "retry_after_create", "full_cycle", "deleted_behind_back")
OPTIONS = Options(concurrency=4, retries=10, retry_interval=0.01, max_backoff=0.05)


def mine(env: Env) -> list[str]:
    """The deployment's live processes (the lister and the running probe)."""
    return [str(pid) for pid in processes(owner_arg(env.deployment))]


def sweep(env: Env) -> None:
    kill(processes(owner_arg(env.deployment)))


def stop_one(env: Env, pid: str) -> None:
    kill([int(pid)])
    for _ in range(100):
        if pid not in mine(env):
            return
        import time
        time.sleep(0.02)


def subject(flaw: str = "", **fields: Any) -> Subject:
    return Subject("sample.Process", mine, running=mine, name=f"sample.Process{f' ({flaw})' if flaw else ''}",
                   properties=lambda env: {"directory": str(env.tmp_path / "ports"), "flaw": flaw},
                   delete=stop_one, cleanup=sweep, options=OPTIONS, **fields)


TestProcessConformance = conformance_tests(subject(), plugins=[plugin])


@pytest.mark.parametrize("flaw, check, message", [
    # a crash between the launch and the save of the pid: the resumed start launches a second process
    ("trusts_pid", "crash_in_operations",
     "crash before start's save #1: the resumed install left 2 resources: "),
    ("stop_noop", "stop_stops", "stop returned but the running probe still shows 1 resource: "),
    ("always_launch", "operations_twice", "start ran twice and left 2 resources: "),
])
def test_each_broken_version_is_caught_by_its_check(tmp_path: Path, flaw: str, check: str, message: str) -> None:
    (result,) = run_checks(subject(flaw), plugins=[plugin], tmp_path=tmp_path, checks=[check])
    assert result.status == FAIL, result.line()
    assert result.detail.startswith(message), result.detail


@pytest.mark.parametrize("flaw", ["trusts_pid", "stop_noop", "always_launch"])
def test_the_checks_v1_had_let_each_broken_version_pass(tmp_path: Path, flaw: str) -> None:
    results = run_checks(subject(flaw), plugins=[plugin], tmp_path=tmp_path, checks=V1_CHECKS)
    assert [r.status for r in results] == [PASS] * len(V1_CHECKS), "\n".join(r.line() for r in results)


def test_the_correct_version_passes_every_check(tmp_path: Path) -> None:
    results = {r.check: r for r in run_checks(subject(), plugins=[plugin], tmp_path=tmp_path)}
    assert all(r.status in (PASS, SKIP) for r in results.values()), "\n".join(r.line() for r in results.values())
    assert results["stop_stops"].detail == "1 resource running after install, none once stop returned"
    assert "start: save #1, after" in results["crash_in_operations"].detail
    assert "stop:" in results["crash_in_operations"].detail and "delete: after" in results["crash_in_operations"].detail
    assert results["operations_twice"].detail == "no duplicate after each of start, stop ran twice"
    assert not processes(owner_arg("cf-"))
