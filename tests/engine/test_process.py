"""The CLI as a user runs it, with the plugin found through a real entry point.

Covers kill -9 in the middle of an install (resume repeats no finished create), a
second install on a busy deployment (refused, naming the running one), and a lock
left by a dead process (taken over).
"""

from __future__ import annotations

import json
import signal
import sqlite3

import pytest
from engine_helpers import instance_rows, journal_lines, wait_for

pytestmark = pytest.mark.integration

FLAT = """
node_templates:
  n:
    type: journal.Node
    instances: 6
    properties: {sleep: 0.15}
"""


def test_kill_9_mid_install_then_rerun_finishes_without_repeating_finished_creates(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(FLAT)
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), "--concurrency", "2", background=True)
    wait_for(lambda: sum(line.startswith("done create") for line in journal_lines(tmp_path)) >= 3,
             what="three finished creates")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    before = instance_rows(state)
    finished = {i for i, (_, ops) in before.items() if ops.get("create") == "succeeded"}
    in_progress = {i for i, (s, _) in before.items() if s.endswith("ing")}
    assert finished and len(finished) < 6, before
    mark = len(journal_lines(tmp_path))

    result = cli("install", "bp.yaml", "--state", str(state), "--concurrency", "2")
    assert result.returncode == 0, result.stderr
    rerun = journal_lines(tmp_path)[mark:]
    recreated = {line.split()[1] for line in rerun if line.startswith("create ")}
    assert not recreated & finished  # no finished create ran again
    assert in_progress <= recreated | {i for i in in_progress if before[i][1].get("create") == "succeeded"}
    after = instance_rows(state)
    assert {s for s, _ in after.values()} == {"started"} and len(after) == 6
    # the dead process's lock was taken over and its execution marked interrupted
    with sqlite3.connect(state) as db:
        statuses = [r[0] for r in db.execute("SELECT status FROM executions ORDER BY id")]
    assert statuses == ["interrupted", "succeeded"]


def test_second_install_on_a_busy_deployment_is_refused(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, properties: {sleep: 1.5}}}")
    state = tmp_path / "state.db"
    first = cli("install", "bp.yaml", "--state", str(state), background=True)
    try:
        wait_for(lambda: journal_lines(tmp_path), what="the first install to start")
        second = cli("install", "bp.yaml", "--state", str(state))
        assert second.returncode == 1
        assert f"deployment 'bp' is busy: execution 1 (install) of pid {first.pid}" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err


def test_failure_summary_exit_codes_and_queries(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("""
node_templates:
  ok: {type: journal.Node}
  bad: {type: journal.Node, properties: {fatal: create},
        relationships: [{type: orchestrator.relationships.depends_on, target: ok}]}
outputs:
  where: {value: {get_attribute: [ok, address]}}
""")
    state = str(tmp_path / "state.db")
    result = cli("install", "bp.yaml", "--state", state)
    assert result.returncode == 1
    assert "install of deployment 'bp' FAILED" in result.stderr
    assert "bad_0: create (journal) failed: create refused by the test" in result.stderr
    assert "Traceback" not in result.stderr
    debug = cli("install", "bp.yaml", "--state", state, "--debug")
    assert debug.returncode == 1 and "Traceback" in debug.stderr

    status = json.loads(cli("status", "--state", state, "--json").stdout)
    assert {i["instance"]: i["state"] for i in status["instances"]} == {"ok_0": "started", "bad_0": "failed"}
    assert status["instances"][1]["error"] == "create (journal) failed: create refused by the test"
    assert json.loads(cli("outputs", "--state", state, "--json").stdout) == {"where": "addr-ok_0"}
    events = [json.loads(line) for line in cli("events", "--state", state, "--json").stdout.splitlines()]
    failed = [e for e in events if e["type"] == "operation_failed"]
    assert failed and failed[0]["instance"] == "bad_0" and failed[0]["plugin"] == "journal"

    text = cli("status", "--state", state).stdout
    assert "ok_0" in text and "started" in text
    unknown = cli("uninstall", "-d", "nope", "--state", state)
    assert unknown.returncode == 2 and "no deployment 'nope'" in unknown.stderr
    done = cli("uninstall", "--state", state)
    assert done.returncode == 0, done.stderr
    assert "uninstall of deployment 'bp' succeeded" in done.stdout


def test_json_install_streams_one_event_per_line(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    result = cli("install", "bp.yaml", "--state", str(tmp_path / "s.db"), "--json")
    assert result.returncode == 0
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[0]["type"] == "workflow_started" and events[-1]["type"] == "workflow_succeeded"
    assert {e["operation"] for e in events if e["type"] == "operation_succeeded"} == {"create", "configure", "start"}




def test_a_finished_instance_is_in_the_state_while_another_one_is_still_running(cli, tmp_path):
    # What ends an operation rides with the next "started" mark; when none comes (the only
    # other instance is in a long hook), it must still reach the state within moments.
    (tmp_path / "bp.yaml").write_text("""
node_templates:
  fast: {type: journal.Node}
  slow: {type: journal.Node, properties: {sleep: 2}}
""")
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), "--concurrency", "2", background=True)

    def fast_recorded() -> dict | None:
        try:
            rows = instance_rows(state)
        except sqlite3.OperationalError:  # the state is being created
            return None
        return rows if rows.get("fast_0", ("",))[0] == "started" else None

    try:
        rows = wait_for(fast_recorded, what="fast_0 recorded as started")
        # slow_0's create was still running: no write of its own carried fast_0's last one
        assert "done create slow_0" not in journal_lines(tmp_path)
        assert rows["fast_0"][1] == {"create": "succeeded", "configure": "succeeded", "start": "succeeded"}
        assert rows["slow_0"] == ("creating", {"create": "started"})
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == 0


@pytest.mark.parametrize("fmt", [(), ("--json",)], ids=["plain", "json"])
def test_a_reader_that_goes_away_does_not_stop_or_hang_the_run(cli, tmp_path, fmt):
    # `orchestrator install ... | head -1`: the pipe closes after the first line.
    (tmp_path / "bp.yaml").write_text("node_templates:\n  n: {type: journal.Node, instances: 8, "
                                      "properties: {sleep: 0.05}}\n")
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), "--concurrency", "2", *fmt, background=True)
    assert proc.stdout.readline()
    proc.stdout.close()  # the reader is gone: every later line of the run meets a broken pipe
    assert proc.wait(timeout=60) == 0
    stderr = proc.stderr.read()
    assert "Traceback" not in stderr, stderr
    assert {s for s, _ in instance_rows(state).values()} == {"started"}
    assert len(instance_rows(state)) == 8
