"""The CLI on a PostgreSQL state (``--state postgresql://...`` or ``ORCHESTRATOR_STATE``).

Every command works on a database as on a file; a password never reaches the output; a
server that cannot be reached or refuses the login is one line and exit 2; locks are
leases across "hosts" (distinct ``ORCHESTRATOR_HOST_ID``); kill -9 mid-install, then a
rerun resumes; CLIs racing on a new database create its schema once; an old schema is
migrated and a newer one refused.
"""

from __future__ import annotations

import json
import signal
import time

import pytest
from engine_helpers import clean_failure, instance_rows, journal_lines, state_rows, wait_for

from orchestrator.state import SCHEMA_VERSION

pytestmark = pytest.mark.integration

BLUEPRINT = """
node_templates:
  a: {type: journal.Node, instances: 2}
  b: {type: journal.Node, relationships: [{type: journal.connected_to, target: a}]}
outputs:
  where: {value: {get_attribute: [a, address]}}
"""

SLOW = """
node_templates:
  n: {type: journal.Node, instances: 6, properties: {sleep: %s}}
"""


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def _masked(url: str) -> str:
    return url.replace(f":{_password(url)}@", ":***@")


def executions(url: str) -> list[tuple[int, str]]:
    return state_rows(url, "SELECT id, status FROM executions ORDER BY id")


def locks(url: str) -> list[tuple]:
    return state_rows(url, "SELECT deployment, execution, host FROM locks")


def test_every_command_works_on_a_database_and_never_shows_its_password(cli, tmp_path, postgres_url):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    password = _password(postgres_url)
    results = [cli("install", "bp.yaml", "--state", postgres_url)]
    assert results[-1].returncode == 0, results[-1].stderr
    cli.env["ORCHESTRATOR_STATE"] = postgres_url  # the same, from the environment
    results.append(cli("status", "--json"))
    status = json.loads(results[-1].stdout)
    assert {i["instance"]: i["state"] for i in status["instances"]} == {"a_0": "started", "a_1": "started",
                                                                        "b_0": "started"}
    assert status["locked_by"] is None
    results.append(cli("outputs", "--json"))
    assert json.loads(results[-1].stdout) == {"where": ["addr-a_0", "addr-a_1"]}
    results.append(cli("events", "--json"))
    events = [json.loads(line) for line in results[-1].stdout.splitlines()]
    assert events[0]["type"] == "workflow_started" and events[-1]["type"] == "workflow_succeeded"
    results.append(cli("unlock", "-d", "bp"))
    assert results[-1].stdout.strip() == "deployment 'bp' is not locked"
    results.append(cli("plan", "bp.yaml", "-d", "bp"))
    assert results[-1].stdout.startswith("No changes"), results[-1].stdout
    results.append(cli("uninstall"))
    assert results[-1].returncode == 0, results[-1].stderr
    assert "unlink b_0 a_0" in journal_lines(tmp_path)
    assert [s for _, s in executions(postgres_url)] == ["succeeded", "succeeded"] and locks(postgres_url) == []
    results.append(cli("status", "--state", postgres_url.replace(password, "wrong")))
    for result in results:
        assert password not in result.stdout + result.stderr


def test_a_server_that_cannot_be_reached_or_refuses_the_login_is_one_line_and_exit_2(cli, tmp_path, postgres_url):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    wrong = postgres_url.replace(_password(postgres_url), "not-the-password")
    for command in (("status",), ("install", "bp.yaml")):  # a query, and a workflow
        clean_failure(cli(*command, "--state", wrong), f"cannot use the PostgreSQL state {_masked(wrong)}",
                      "password authentication failed", code=2)
    port = postgres_url.rsplit(":", 1)[1].split("/", 1)[0]
    unreachable = postgres_url.replace(f":{port}/", ":1/")
    result = cli("install", "bp.yaml", "--state", unreachable)
    clean_failure(result, _masked(unreachable), "Connection refused", code=2)
    missing = postgres_url.rsplit("/", 1)[0] + "/no_such_db"
    clean_failure(cli("status", "--state", missing), 'database "no_such_db" does not exist', code=2)
    assert journal_lines(tmp_path) == []


def test_a_lease_of_another_host_holds_while_renewed_and_is_taken_over_once_expired(cli, tmp_path, postgres_url):
    (tmp_path / "bp.yaml").write_text(SLOW % 0.6)
    cli.env.update(ORCHESTRATOR_LOCK_LEASE="3.0", ORCHESTRATOR_HOST_ID="host-a")  # renewed every second
    first = cli("install", "bp.yaml", "--state", postgres_url, "--concurrency", "1", background=True)
    try:
        wait_for(lambda: any(line.startswith("done create") for line in journal_lines(tmp_path)),
                 what="a finished create")
        cli.env["ORCHESTRATOR_HOST_ID"] = "host-b"
        time.sleep(3.2)  # past the first lease: only its renewals keep it
        busy = cli("install", "bp.yaml", "--state", postgres_url)
        clean_failure(busy, f"deployment 'bp' is busy: execution 1 (install) of pid {first.pid} on host-a")
        clean_failure(cli("unlock", "-d", "bp", "--state", postgres_url), "not unlocking deployment 'bp'",
                      "its lease is live")
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    # host-b cannot tell whether a pid of host-a is alive: the lock holds until its lease expires
    clean_failure(cli("install", "bp.yaml", "--state", postgres_url), "is busy", "on host-a")
    (left,) = state_rows(postgres_url, "SELECT expires_at - extract(epoch FROM clock_timestamp()) FROM locks")
    time.sleep(max(0.0, left[0]) + 0.1)
    resumed = cli("install", "bp.yaml", "--state", postgres_url)
    assert resumed.returncode == 0, resumed.stderr
    assert executions(postgres_url) == [(1, "interrupted"), (2, "succeeded")]
    assert locks(postgres_url) == []
    assert {s for s, _ in instance_rows(postgres_url).values()} == {"started"}


def test_kill_9_mid_install_then_rerun_resumes_without_repeating_finished_creates(cli, tmp_path, postgres_url):
    (tmp_path / "bp.yaml").write_text(SLOW % 0.15)
    proc = cli("install", "bp.yaml", "--state", postgres_url, "--concurrency", "2", background=True)
    wait_for(lambda: sum(line.startswith("done create") for line in journal_lines(tmp_path)) >= 3,
             what="three finished creates")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    before = instance_rows(postgres_url)
    finished = {i for i, (_, ops) in before.items() if ops.get("create") == "succeeded"}
    assert finished and len(finished) < 6, before
    assert locks(postgres_url) == [("bp", 1, locks(postgres_url)[0][2])]  # left behind by the dead process
    mark = len(journal_lines(tmp_path))
    result = cli("install", "bp.yaml", "--state", postgres_url, "--concurrency", "2")  # same host: taken at once
    assert result.returncode == 0, result.stderr
    recreated = {line.split()[1] for line in journal_lines(tmp_path)[mark:] if line.startswith("create ")}
    assert not recreated & finished
    assert {s for s, _ in instance_rows(postgres_url).values()} == {"started"}
    assert executions(postgres_url) == [(1, "interrupted"), (2, "succeeded")] and locks(postgres_url) == []


def test_clis_racing_on_a_new_database_create_its_schema_once(cli, tmp_path, postgres_url):
    for n in range(6):
        (tmp_path / f"d{n}.yaml").write_text("node_templates: {n: {type: journal.Node}}")
    procs = [cli("install", f"d{n}.yaml", "--state", postgres_url, background=True) for n in range(6)]
    for proc in procs:
        _out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert state_rows(postgres_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert sorted(r[0] for r in state_rows(postgres_url, "SELECT deployment FROM locks")) == []
    assert len(executions(postgres_url)) == 6


def test_a_schema_3_database_is_migrated_and_a_newer_one_refused(cli, tmp_path, postgres_url):
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    assert cli("install", "bp.yaml", "--state", postgres_url).returncode == 0
    state_rows(postgres_url, "DROP TABLE operations; DROP TABLE resources; "
                             "UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    status = cli("status", "--state", postgres_url)
    assert status.returncode == 0 and "a_0" in status.stdout, status.stderr
    assert state_rows(postgres_url, "SELECT value FROM meta WHERE key = 'schema_version'") == [(str(SCHEMA_VERSION),)]
    assert state_rows(postgres_url, "SELECT count(*) FROM operations") == [(0,)]
    state_rows(postgres_url, "UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    needle = f"was written by a newer orchestrator (schema 99; this one reads up to {SCHEMA_VERSION})"
    for command in (("status",), ("unlock", "-d", "bp")):  # a query, and a write
        clean_failure(cli(*command, "--state", postgres_url), _masked(postgres_url), needle)
    state_rows(postgres_url, f"UPDATE meta SET value = '{SCHEMA_VERSION}' WHERE key = 'schema_version'")
    assert cli("uninstall", "--state", postgres_url).returncode == 0
