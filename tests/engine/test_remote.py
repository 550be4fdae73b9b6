"""Hook calls on Celery workers (``--executor celery``), with a real Redis and real worker processes.

Every test goes through the CLI as a user would: ``orchestrator worker`` processes with
the journal plugin, ``install``/``uninstall``/``drift``/``execute`` with ``--executor
celery``; workers and the CLI are killed with SIGKILL mid-operation.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from engine_helpers import journal_lines

pytestmark = pytest.mark.integration

TWO_TIERS = """
node_templates:
  host: {type: journal.Host}
  app:
    type: journal.Node
    instances: 3
    properties: {value: v, log: "hello from {instance}"}
    relationships: [{type: orchestrator.relationships.contained_in, target: host}]
  peer:
    type: journal.Node
    properties: {value: {get_secret: token}}
    relationships: [{type: journal.connected_to, target: host}]
outputs:
  addresses: {value: {get_attribute: [app, address]}}
"""


class Workers:
    """``orchestrator worker`` processes started for one test (killed after it)."""

    def __init__(self, env: dict[str, str], broker: str, cwd: Path) -> None:
        self.env = env
        self.broker = broker
        self.cwd = cwd
        self.procs: dict[str, subprocess.Popen[str]] = {}

    def start(self, name: str, concurrency: int = 4, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        log = open(self.cwd / f"worker-{name}.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen([sys.executable, "-m", "orchestrator", "worker", "--broker", self.broker,
                                 "--concurrency", str(concurrency), "--name", name],
                                env=env or self.env, cwd=self.cwd, stdout=log, stderr=subprocess.STDOUT, text=True)
        self.procs[name] = proc
        self._wait_ready(name)
        return proc

    def _wait_ready(self, name: str) -> None:
        from orchestrator.remote.app import make_app

        app = make_app(self.broker)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise AssertionError(f"worker {name} exited: {self.log(name)}")
            replies = app.control.ping(timeout=0.5) or []
            if any(name in node for reply in replies for node in reply):
                return
        raise AssertionError(f"worker {name} did not answer: {self.log(name)}")

    def log(self, name: str) -> str:
        return (self.cwd / f"worker-{name}.log").read_text()

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()
        self.procs.clear()


@pytest.fixture
def celery_env(cli, redis_server, tmp_path: Path) -> dict[str, str]:
    """The CLI's environment with the broker, a short claim lease and a private cache."""
    redis_server.flush()
    env = cli.env
    env.update(ORCHESTRATOR_BROKER=redis_server.url, ORCHESTRATOR_CLAIM_LEASE="2",
               XDG_CACHE_HOME=str(tmp_path / "cache"), ORCHESTRATOR_SECRET_TOKEN="s3cret-token")
    return env


@pytest.fixture
def workers(celery_env: dict[str, str], redis_server, tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(celery_env, redis_server.url, tmp_path)
    yield pool
    pool.stop()


@pytest.fixture
def background(cli) -> Iterator:
    """``cli(..., background=True)``, killed after the test whatever happened (a CLI left waiting
    for workers that the test stopped would wait for its operation timeout)."""
    started: list[subprocess.Popen[str]] = []

    def run(*args: str, **kwargs):
        proc = cli(*args, background=True, **kwargs)
        started.append(proc)
        return proc

    yield run
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def celery(*args: str) -> tuple[str, ...]:
    return (*args, "--executor", "celery")


def ops(tmp_path: Path, op: str) -> list[str]:
    return [line for line in journal_lines(tmp_path) if line.startswith(f"{op} ")]


def test_install_and_uninstall_run_on_workers_as_they_run_here(cli, workers, tmp_path: Path):
    workers.start("w1")
    workers.start("w2")
    (tmp_path / "bp.yaml").write_text(TWO_TIERS.replace("value: v,", "value: v, print: printed,"))
    remote = cli(*celery("install", "bp.yaml", "--state", "remote.db", "--json"))
    assert remote.returncode == 0, remote.stderr
    events = [json.loads(line) for line in remote.stdout.splitlines()]
    logs = [e for e in events if e["type"] == "log"]
    assert sorted(e["message"] for e in logs if e["operation"] == "create") == [
        "hello from {instance}"] * 3 + ["printed"] * 3, "workers' log lines (and prints) reach the CLI's events"
    assert "s3cret-token" not in remote.stdout
    for op in ("create", "configure", "start"):
        assert sorted(ops(tmp_path, op)) == sorted(f"{op} {i}" for i in ("host_0", "app_0", "app_1", "app_2",
                                                                          "peer_0")), "each operation once"
    assert len(ops(tmp_path, "establish")) == 1
    local = cli("install", "bp.yaml", "--state", "local.db", "-d", "bp")
    assert local.returncode == 0, local.stderr
    outputs = [json.loads(cli("outputs", "--state", s, "--json").stdout) for s in ("remote.db", "local.db")]
    assert outputs[0] == outputs[1], "runtime properties set on workers are the ones set locally"
    statuses = [json.loads(cli("status", "--state", s, "--json").stdout) for s in ("remote.db", "local.db")]
    assert [i["state"] for i in statuses[0]["instances"]] == [i["state"] for i in statuses[1]["instances"]]
    stored = [json.loads(line) for line in cli("events", "--state", "remote.db", "--json").stdout.splitlines()]
    assert sorted(e["instance"] for e in stored if e["type"] == "log" and e["operation"] == "create") == [
        "app_0", "app_0", "app_1", "app_1", "app_2", "app_2"], "kept in the state too"
    gone = cli(*celery("uninstall", "--state", "remote.db"))
    assert gone.returncode == 0, gone.stderr
    assert sorted(ops(tmp_path, "delete"))[:5] == sorted(f"delete {i}" for i in ("host_0", "app_0", "app_1",
                                                                                  "app_2", "peer_0"))
    ran = "\n".join(workers.log(n) for n in ("w1", "w2"))
    assert "plugins: " in ran and "journal (" in ran, "a worker names the plugins it serves"


def test_retries_and_failures_come_back_as_they_would_locally(cli, workers, tmp_path: Path):
    workers.start("w1")
    (tmp_path / "bp.yaml").write_text("""
node_templates:
  flaky: {type: journal.Node, properties: {fail: {create: 2}}}
  refused: {type: journal.Node, properties: {fatal: configure}}
  custom: {type: journal.Node, properties: {raise_base: {start: Custom}}}
""")
    run = cli(*celery("install", "bp.yaml", "--state", "s.db", "--retry-interval", "0.05"))
    assert run.returncode == 1
    assert "flaky_0.create [journal] create will be retried in" in run.stdout
    assert "refused_0: configure (journal) failed: configure refused by the test" in run.stderr
    status = json.loads(cli("status", "--state", "s.db", "--json").stdout)
    states = {i["instance"]: i["state"] for i in status["instances"]}
    assert states["refused_0"] == "failed"
    debug = cli(*celery("install", "bp.yaml", "--state", "s.db", "--retry-interval", "0.05", "--debug"))
    assert debug.returncode == 1
    assert "on worker w1" in debug.stderr and "Traceback" in debug.stderr, "the worker's traceback is shown"


def test_no_worker_is_a_clear_error_before_anything_is_written(cli, celery_env, tmp_path: Path):
    (tmp_path / "bp.yaml").write_text(TWO_TIERS)
    run = cli(*celery("install", "bp.yaml", "--state", "s.db"))
    assert run.returncode == 1
    assert "no orchestrator worker answers on redis://127.0.0.1:" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "s.db").exists() or "bp" not in cli("status", "--state", "s.db").stdout
    nobroker = cli("install", "bp.yaml", "--state", "s.db", "--executor", "celery", env={
        k: v for k, v in celery_env.items() if k != "ORCHESTRATOR_BROKER"})
    assert nobroker.returncode == 2 and "need a broker" in nobroker.stderr
    down = cli(*celery("install", "bp.yaml", "--state", "s.db", "--broker", "redis://127.0.0.1:9/0"))
    assert down.returncode == 1 and "cannot reach the broker at redis://127.0.0.1:9/0" in down.stderr


def test_a_plugin_missing_on_the_worker_fails_that_operation_clearly(cli, workers, celery_env, tmp_path: Path):
    bare = {k: v for k, v in celery_env.items() if k != "PYTHONPATH"}  # no journal distribution there
    workers.start("bare", env=bare)
    (tmp_path / "bp.yaml").write_text("node_templates:\n  a: {type: journal.Node}\n")
    run = cli(*celery("install", "bp.yaml", "--state", "s.db"), timeout=60)
    assert run.returncode == 1
    assert "plugin 'journal' is not installed" in run.stderr and "bare" in run.stderr


def test_a_worker_killed_mid_operation_costs_a_rerun_on_another(cli, workers, background, tmp_path: Path):
    workers.start("w1", concurrency=1)
    workers.start("w2", concurrency=1)
    (tmp_path / "bp.yaml").write_text("node_templates:\n  a: {type: journal.Node, properties: {sleep: 3}}\n")
    run = background(*celery("install", "bp.yaml", "--state", "s.db"))
    _wait_for(lambda: ops(tmp_path, "create"))
    claimed = _claimer(tmp_path / "s.db")
    workers.kill(claimed)
    out, err = run.communicate(timeout=90)
    assert run.returncode == 0, err
    assert f"worker {claimed} stopped running a_0 create; sent again" in out, out
    assert ops(tmp_path, "create") == ["create a_0", "create a_0"], "started on one, run again on the other"
    assert [line for line in journal_lines(tmp_path) if line.startswith("done ")] == [
        "done create a_0", "done configure a_0", "done start a_0"], "each finished once"


def _claimer(state: Path) -> str:
    import sqlite3

    with sqlite3.connect(state) as db:
        (worker,) = db.execute("SELECT worker FROM operations WHERE key = 'create'").fetchone()
    return worker


def test_the_cli_killed_mid_run_resumes_with_the_workers_results(cli, workers, background, tmp_path: Path):
    workers.start("w1")
    (tmp_path / "bp.yaml").write_text("node_templates:\n  a: {type: journal.Node, properties: {sleep: 2}}\n")
    run = background(*celery("install", "bp.yaml", "--state", "s.db"))
    _wait_for(lambda: ops(tmp_path, "create"))
    run.send_signal(signal.SIGKILL)
    run.wait()
    again = cli(*celery("install", "bp.yaml", "--state", "s.db"))  # while the worker still runs create
    assert again.returncode == 0, again.stderr
    assert ops(tmp_path, "create") == ["create a_0"], "the running one was waited for, not run again"
    assert ops(tmp_path, "start") == ["start a_0"]
    run = background(*celery("uninstall", "--state", "s.db"))
    _wait_for(lambda: ops(tmp_path, "stop"))
    run.send_signal(signal.SIGKILL)
    run.wait()
    _wait_for(lambda: "done stop a_0" in journal_lines(tmp_path))  # the worker finished it meanwhile
    gone = cli(*celery("uninstall", "--state", "s.db"))
    assert gone.returncode == 0, gone.stderr
    assert ops(tmp_path, "stop") == ["stop a_0"], "its finished result was kept, not run again"
    assert ops(tmp_path, "delete") == ["delete a_0"]


def test_drift_and_custom_operations_run_on_workers_with_the_blueprints_files(cli, workers, tmp_path: Path):
    workers.start("w1")
    (tmp_path / "bp.yaml").write_text("node_templates:\n  a: {type: journal.Node}\n")
    (tmp_path / "files").mkdir()
    (tmp_path / "files" / "motd.txt").write_text("shipped with the deployment\n")
    assert cli(*celery("install", "bp.yaml", "--state", "s.db")).returncode == 0
    read = cli(*celery("execute", "read", "-p", "path=files/motd.txt", "--state", "s.db", "--json"))
    assert read.returncode == 0, read.stderr
    result = json.loads(read.stdout)["results"][0]["result"]
    assert result["text"] == "shipped with the deployment\n"
    assert result["directory"].startswith(str(tmp_path / "cache")), "read from the worker's copy"
    assert result["pid"] == workers.procs["w1"].pid
    (tmp_path / "journal.log.drift.a_0").write_text(json.dumps({"size": ["small", "large"]}))
    drift = cli(*celery("drift", "--state", "s.db", "--json", "--exit-code"))
    assert drift.returncode == 3, drift.stderr
    assert json.loads(drift.stdout)["summary"]["drifted"] == 1


def _wait_for(check, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def test_worker_command_needs_a_broker(cli):
    env = {k: v for k, v in os.environ.items() if k != "ORCHESTRATOR_BROKER"}
    run = cli("worker", env=env)
    assert run.returncode == 2 and "need a broker" in run.stderr


def test_workers_on_two_hosts_share_a_postgresql_state(cli, workers, background, celery_env, postgres_url,
                                                      tmp_path: Path):
    for name, host in (("pa", "host-a"), ("pb", "host-b")):
        workers.start(name, concurrency=2, env={**celery_env, "ORCHESTRATOR_HOST_ID": host})
    # Every node operation sleeps, so the kill lands inside hooks: one that has returned but whose
    # outcome is not yet recorded runs again (at least once), which "finished once" can't count.
    (tmp_path / "bp.yaml").write_text(TWO_TIERS.replace("value: v,", "value: v, sleep: 1,").replace(
        "properties: {value: {get_secret: token}}", "properties: {value: {get_secret: token}, sleep: 1}"))
    here = {**celery_env, "ORCHESTRATOR_HOST_ID": "cli-host"}
    run = background(*celery("install", "bp.yaml", "--state", postgres_url, "--concurrency", "4"), env=here)
    _wait_for(lambda: any(line.startswith("create app_") for line in journal_lines(tmp_path)))
    claimed = _claimer_pg(postgres_url)
    assert claimed in ("pa", "pb")
    workers.kill(claimed)
    out, err = run.communicate(timeout=120)
    assert run.returncode == 0, err
    assert f"worker {claimed} stopped running" in out, "what it was running went to the other host"
    assert "***" not in postgres_url and postgres_url.split("@")[0].split(":")[-1] not in out + err, "no password"
    for op in ("create", "configure", "start"):
        done = [line for line in journal_lines(tmp_path) if line.startswith(f"done {op} ")]
        assert sorted(done) == sorted(set(done)) and len(done) == 5, f"{op}: each finished once"
    outputs = json.loads(cli("outputs", "--state", postgres_url, "--json", env=here).stdout)
    assert sorted(outputs["addresses"]) == ["addr-app_0", "addr-app_1", "addr-app_2"]
    gone = cli(*celery("uninstall", "--state", postgres_url), env=here)
    assert gone.returncode == 0, gone.stderr
    status = json.loads(cli("status", "--state", postgres_url, "--json", env=here).stdout)
    assert {i["state"] for i in status["instances"]} == {"deleted"}


def _claimer_pg(url: str) -> str | None:
    import psycopg

    with psycopg.connect(url) as db:
        row = db.execute("SELECT worker FROM operations WHERE outcome IS NULL AND worker IS NOT NULL LIMIT 1").fetchone()
    return row[0] if row else None


def test_a_stop_request_withdraws_the_calls_no_worker_took(cli, workers, background, tmp_path: Path):
    workers.start("w1", concurrency=1)
    (tmp_path / "bp.yaml").write_text("node_templates:\n  a: {type: journal.Node, instances: 3, properties: {sleep: 3}}\n")
    run = background(*celery("install", "bp.yaml", "--state", "s.db", "--concurrency", "3"))
    _wait_for(lambda: ops(tmp_path, "create"))
    workers.kill("w1")  # one create was running there; two are queued and no worker is left
    run.send_signal(signal.SIGINT)
    started = time.monotonic()
    _, err = run.communicate(timeout=60)
    assert run.returncode == 1 and "cancelled" in err, err
    assert time.monotonic() - started < 20, "queued calls do not keep a stopped run waiting"
    workers.start("w2", concurrency=3)
    again = cli(*celery("install", "bp.yaml", "--state", "s.db"))
    assert again.returncode == 0, again.stderr
    done = [line for line in journal_lines(tmp_path) if line.startswith("done create ")]
    assert sorted(done) == ["done create a_0", "done create a_1", "done create a_2"], "each created once"
