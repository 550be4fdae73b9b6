"""Trust under faults, through the real CLI and a real entry-point plugin distribution.

A refused execution changes nothing; locks are leases that can always be recovered;
SIGTERM/SIGINT stop a run cleanly (a second one abandons the running hooks); a hung
hook times out; ``uninstall --ignore-failures`` gets past what cannot be deleted; a
hook raising any ``BaseException`` fails only its operation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest
from engine_helpers import instance_rows, wait_for
from engine_helpers import journal_lines as journal

pytestmark = pytest.mark.integration


def started(tmp_path: Path, op: str, n: int = 1) -> bool:
    return sum(line.startswith(f"{op} ") for line in journal(tmp_path)) >= n


def snapshot(state: Path) -> dict[str, list]:
    """Everything in the state but the lease expiry (renewed by a running holder)."""
    with sqlite3.connect(f"file:{state}?mode=ro", uri=True) as db:
        return {
            "deployments": db.execute("SELECT * FROM deployments ORDER BY id").fetchall(),
            "instances": db.execute("SELECT * FROM instances ORDER BY deployment, id").fetchall(),
            "executions": db.execute("SELECT * FROM executions ORDER BY id").fetchall(),
            "events": db.execute("SELECT * FROM events ORDER BY id").fetchall(),
            "locks": db.execute("SELECT deployment, execution, pid, host, workflow FROM locks").fetchall(),
        }


def executions(state: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT id, status FROM executions ORDER BY id").fetchall()


def locks(state: Path) -> list[tuple]:
    with sqlite3.connect(state) as db:
        return db.execute("SELECT deployment, execution, host FROM locks").fetchall()


def no_traceback(result) -> None:
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout, result.stderr


# ---------------------------------------------------------------- execution and locking


SLOW = """
inputs:
  region: {default: eu}
node_templates:
  n: {type: journal.Node, properties: {sleep: %s, value: {get_input: region}}}
"""


def test_a_refused_install_changes_nothing_and_the_running_one_keeps_its_inputs(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(SLOW % 2.0)
    state = tmp_path / "state.db"
    first = cli("install", "bp.yaml", "--state", str(state), "-i", "region=eu", background=True)
    try:
        wait_for(lambda: started(tmp_path, "create"), what="the first install's create")
        wait_for(lambda: any(e[7] == "operation_started" for e in snapshot(state)["events"]),
                 what="its event (events land within 0.1 s)")
        before = snapshot(state)
        second = cli("install", "bp.yaml", "--state", str(state), "-i", "region=us")
        assert second.returncode == 1
        assert f"deployment 'bp' is busy: execution 1 (install) of pid {first.pid}" in second.stderr
        no_traceback(second)
        assert snapshot(state) == before  # not a byte of it rewritten: blueprint, inputs, plan
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    with sqlite3.connect(state) as db:
        (inputs, plan) = db.execute("SELECT inputs, plan FROM deployments").fetchone()
    assert json.loads(inputs) == {"region": "eu"} and '"value":"eu"' in plan


def test_an_install_refused_for_a_changed_blueprint_changes_nothing(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    state = tmp_path / "state.db"
    assert cli("install", "bp.yaml", "--state", str(state)).returncode == 0
    before = snapshot(state)
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, properties: {sleep: 0.01}}}")
    refused = cli("install", "bp.yaml", "--state", str(state))
    assert refused.returncode == 2 and "orchestrator update bp.yaml -d bp" in refused.stderr, refused.stderr
    assert snapshot(state) == before


def _foreign_lock(state: Path, expires_in: float) -> None:
    """A lock as a process on another host (a container, a CI runner) leaves it."""
    now = time.time()
    with sqlite3.connect(state) as db:
        cur = db.execute("INSERT INTO executions (deployment, workflow, status, pid, host, started_at) "
                         "VALUES ('bp', 'install', 'started', 4242, 'ci-runner-7', ?)", (now - 600,))
        db.execute("INSERT INTO locks (deployment, execution, pid, host, proc_start, workflow, acquired_at, "
                   "expires_at) VALUES ('bp', ?, 4242, 'ci-runner-7', '', 'install', ?, ?)",
                   (cur.lastrowid, now - 600, now + expires_in))


def test_a_lock_from_another_host_is_held_while_its_lease_lives_and_unlock_says_whose(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    state = tmp_path / "state.db"
    assert cli("install", "bp.yaml", "--state", str(state)).returncode == 0
    _foreign_lock(state, expires_in=120)
    busy = cli("uninstall", "--state", str(state))
    assert busy.returncode == 1 and "pid 4242 on ci-runner-7" in busy.stderr and "unlock -d bp" in busy.stderr
    refused = cli("unlock", "-d", "bp", "--state", str(state))
    assert refused.returncode == 1
    assert "locked by execution 2 (install) of pid 4242 on ci-runner-7" in refused.stderr
    assert "--force" in refused.stderr
    no_traceback(refused)
    assert locks(state) == [("bp", 2, "ci-runner-7")]
    forced = cli("unlock", "-d", "bp", "--force", "--state", str(state))
    assert forced.returncode == 0, forced.stderr
    assert "cleared the lock of execution 2 (install) of pid 4242 on ci-runner-7" in forced.stdout
    assert locks(state) == [] and executions(state)[-1] == (2, "interrupted")
    assert cli("unlock", "-d", "bp", "--state", str(state)).stdout.strip() == "deployment 'bp' is not locked"
    assert cli("uninstall", "--state", str(state)).returncode == 0


def test_an_expired_lease_is_taken_over_whatever_the_host(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    state = tmp_path / "state.db"
    assert cli("install", "bp.yaml", "--state", str(state)).returncode == 0
    _foreign_lock(state, expires_in=-5)
    result = cli("uninstall", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert [s for _, s in executions(state)] == ["succeeded", "interrupted", "succeeded"]
    assert locks(state) == []


def test_a_running_execution_renews_its_lease(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(SLOW % 3.0)
    state = tmp_path / "state.db"
    cli.env["ORCHESTRATOR_LOCK_LEASE"] = "0.6"  # renewed every 0.2 s
    first = cli("install", "bp.yaml", "--state", str(state), background=True)
    try:
        wait_for(lambda: started(tmp_path, "create"), what="create")
        time.sleep(1.5)  # well past the first lease
        second = cli("install", "bp.yaml", "--state", str(state))
        assert second.returncode == 1 and "is busy" in second.stderr
        (lock,) = locks(state)
        assert lock[2] == socket.gethostname()
    finally:
        _, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert locks(state) == []


def test_a_forced_unlock_stops_the_running_execution_at_its_next_write(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, instances: 2, "
                                      "properties: {sleep: 1.0}}}")
    state = tmp_path / "state.db"
    first = cli("install", "bp.yaml", "--state", str(state), "--concurrency", "1", background=True)
    wait_for(lambda: started(tmp_path, "create"), what="create")
    forced = cli("unlock", "-d", "bp", "--force", "--state", str(state))
    assert forced.returncode == 0, forced.stderr
    _out, err = first.communicate(timeout=60)
    assert first.returncode == 1
    assert "no longer holds the lock on deployment 'bp'" in err
    assert "Traceback" not in err
    assert [line for line in journal(tmp_path) if line.startswith("create ")] == ["create n_0"]  # n_1 never started
    resumed = cli("install", "bp.yaml", "--state", str(state))
    assert resumed.returncode == 0, resumed.stderr


# ---------------------------------------------------------------- signals


THREE = """
node_templates:
  a: {type: journal.Node, instances: 3, properties: {sleep: %s}}
  b: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: a}]}
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_signal_waits_for_running_hooks_then_cancels_and_releases_the_lock(cli, tmp_path, sig):
    (tmp_path / "bp.yaml").write_text(THREE % 1.0)
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), background=True)
    wait_for(lambda: started(tmp_path, "create", 3), what="three creates")
    proc.send_signal(sig)
    _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "waiting for 3 running operations (Ctrl+C again to abandon them)" in err
    assert "was cancelled" in err and "Traceback" not in err
    lines = journal(tmp_path)
    assert sorted(line for line in lines if line.startswith("done create")) == \
        ["done create a_0", "done create a_1", "done create a_2"]  # the running hooks finished
    assert not any(line.startswith(("configure", "create b_0")) for line in lines)  # nothing new started
    assert executions(state) == [(1, "cancelled")] and locks(state) == []
    resumed = cli("install", "bp.yaml", "--state", str(state))
    assert resumed.returncode == 0, resumed.stderr
    assert sum(line.startswith("create a_") for line in journal(tmp_path)) == 3  # no create repeated


def test_a_second_signal_abandons_running_hooks_which_resume_reruns(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(THREE % 30.0)
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), background=True)
    wait_for(lambda: started(tmp_path, "create", 3), what="three creates")
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    proc.send_signal(signal.SIGINT)
    began = time.monotonic()
    _out, err = proc.communicate(timeout=20)
    assert time.monotonic() - began < 5  # not the 30 s the hooks take
    assert proc.returncode == 1
    assert "abandoned 3 running operations" in err and "Traceback" not in err
    assert executions(state) == [(1, "cancelled")] and locks(state) == []
    rows = instance_rows(state)
    assert {i: r for i, r in rows.items() if i.startswith("a_")} == {
        f"a_{n}": ("creating", {"create": "started"}) for n in range(3)}  # in progress: resume reruns them
    (tmp_path / "bp.yaml").write_text(THREE % 0.0)
    resumed = cli("install", "bp.yaml", "--state", str(state))
    assert resumed.returncode == 0, resumed.stderr
    assert sum(line == "done create a_0" for line in journal(tmp_path)) == 1


def test_a_single_ctrl_c_always_waits_for_the_running_hooks(cli, tmp_path):
    """Signals at random moments of the run: every hook that started also finished."""
    import random

    rng = random.Random(7)
    (tmp_path / "bp.yaml").write_text(THREE % 0.3)
    for trial in range(6):
        state = tmp_path / f"state{trial}.db"
        (tmp_path / "journal.log").unlink(missing_ok=True)
        proc = cli("install", "bp.yaml", "--state", str(state), background=True)
        wait_for(lambda: started(tmp_path, "create"), what="a create")
        time.sleep(rng.uniform(0, 0.6))
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        lines = journal(tmp_path)
        begun = [line for line in lines if not line.startswith("done ")]
        done = [line.removeprefix("done ") for line in lines if line.startswith("done ")]
        assert sorted(begun) == sorted(done), (trial, lines)
        assert "Traceback" not in err
        assert executions(state)[-1][1] in ("cancelled", "succeeded") and locks(state) == []


# ---------------------------------------------------------------- timeouts


def test_a_hung_hook_times_out_fails_its_operation_and_the_process_exits(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("""
node_templates:
  stuck: {type: journal.Node, properties: {hang: {create: 9}}}
  other: {type: journal.Node, properties: {sleep: 0.3}}
""")
    state = tmp_path / "state.db"
    began = time.monotonic()
    result = cli("install", "bp.yaml", "--state", str(state), "--operation-timeout", "1", "--retries", "0")
    assert time.monotonic() - began < 15
    assert result.returncode == 1
    assert "stuck_0: create (journal) failed: timed out after 1s" in result.stderr
    no_traceback(result)
    status = json.loads(cli("status", "--state", str(state), "--json").stdout)
    states = {i["instance"]: (i["state"], i.get("error")) for i in status["instances"]}
    assert states["stuck_0"] == ("failed", "create (journal) failed: timed out after 1s")
    assert "done create other_0" in journal(tmp_path)  # what did not depend on it went on
    assert executions(state) == [(1, "failed")] and locks(state) == []


def test_a_template_timeout_retries_a_hung_hook_while_the_rest_goes_on(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("""
node_templates:
  stuck: {type: journal.Node, properties: {hang: {create: 1}}, operation_timeout: 1}
  other: {type: journal.Node, properties: {sleep: 0.2}, instances: 2}
  after: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: stuck}]}
""")
    result = cli("install", "bp.yaml", "--state", str(tmp_path / "s.db"), "--retry-interval", "0.1")
    assert result.returncode == 0, result.stderr
    assert "stuck_0.create [journal] create will be retried in 0.1s (retry 1 of 5): timed out after 1s" in result.stdout
    lines = journal(tmp_path)
    assert lines.index("done start other_0") < lines.index("done create stuck_0")  # others did not wait
    assert lines.index("done start stuck_0") < lines.index("create after_0")  # dependents did


# ---------------------------------------------------------------- uninstall --ignore-failures


STUCK = """
node_templates:
  net: {type: journal.Node}
  vm: {type: journal.Node, properties: {fatal: delete},
       relationships: [{type: orchestrator.relationships.depends_on, target: net}]}
  app: {type: journal.Node, properties: {fatal: stop},
        relationships: [{type: orchestrator.relationships.contained_in, target: vm}]}
"""


def test_uninstall_ignore_failures_gets_past_what_cannot_be_deleted_and_says_what_remains(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(STUCK)
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 0
    stuck = cli("uninstall", "--state", state, "--retries", "0")
    assert stuck.returncode == 1 and "delete net_0" not in journal(tmp_path)
    result = cli("uninstall", "--state", state, "--retries", "0", "--ignore-failures")
    assert result.returncode == 0, result.stderr
    assert "finished, ignoring failures" in result.stderr
    assert "app_0: stop (journal) failed: stop refused by the test" in result.stderr
    assert "may have been left behind: vm_0 " in result.stderr
    lines = journal(tmp_path)
    assert "done delete app_0" in lines and "done delete net_0" in lines  # past the failures
    status = cli("status", "--state", state)
    assert "may have left 1 resource behind" in status.stderr and "vm_0: delete (journal) failed" in status.stderr
    data = json.loads(cli("status", "--state", state, "--json").stdout)
    assert [left["instance"] for left in data["left_behind"]] == ["vm_0"]
    assert {i["instance"]: i["state"] for i in data["instances"]} == {
        "net_0": "deleted", "vm_0": "failed", "app_0": "deleted"}


# ---------------------------------------------------------------- hooks raising BaseException


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "Custom"])
def test_a_hook_raising_a_base_exception_fails_only_its_operation(cli, tmp_path, kind):
    (tmp_path / "bp.yaml").write_text(f"""
node_templates:
  ok: {{type: journal.Node}}
  bad: {{type: journal.Node, properties: {{raise_base: {{configure: {kind}}}}}}}
""")
    state = str(tmp_path / "state.db")
    result = cli("install", "bp.yaml", "--state", state)
    assert result.returncode == 1
    assert f"bad_0: configure (journal) failed: {kind}: {kind} raised by the test in configure" in result.stderr
    no_traceback(result)
    events = [json.loads(line) for line in cli("events", "--state", state, "--json").stdout.splitlines()]
    failed = [e for e in events if e["type"] == "operation_failed"]
    assert [(e["instance"], e["operation"], e["plugin"]) for e in failed] == [("bad_0", "configure", "journal")]
    status = json.loads(cli("status", "--state", state, "--json").stdout)
    bad = next(i for i in status["instances"] if i["instance"] == "bad_0")
    assert bad["state"] == "failed" and bad["error"].startswith(f"configure (journal) failed: {kind}")
    assert executions(Path(state)) == [(1, "failed")] and locks(Path(state)) == []


def test_status_after_a_failed_create_shows_failed_with_the_error(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node, properties: {fatal: create}}}")
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 1
    text = cli("status", "--state", state).stdout
    assert "n_0  failed" in text and "create (journal) failed: create refused by the test" in text
    (tmp_path / "bp.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    assert cli("install", "bp.yaml", "--state", state).returncode == 0
    data = json.loads(cli("status", "--state", state, "--json").stdout)
    assert data["instances"] == [{"instance": "n_0", "node": "n", "type": "journal.Node", "state": "started"}]


def test_kill_9_leaves_a_lock_that_the_next_run_takes_over_at_once(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(SLOW % 30.0)
    state = tmp_path / "state.db"
    proc = cli("install", "bp.yaml", "--state", str(state), background=True)
    wait_for(lambda: started(tmp_path, "create"), what="create")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    (tmp_path / "bp.yaml").write_text(SLOW % 0.0)
    began = time.monotonic()
    result = cli("install", "bp.yaml", "--state", str(state))
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - began < 10  # no waiting for the 60 s lease: the pid is gone
    assert [s for _, s in executions(state)] == ["interrupted", "succeeded"]
