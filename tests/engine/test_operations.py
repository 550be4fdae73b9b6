"""Custom operations through the real CLI: ``operations``, ``execute``, and how inputs are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from engine_helpers import journal_lines

pytestmark = pytest.mark.integration

WEB = """
node_templates:
  vm: {type: journal.Host, instances: 2}
  app:
    type: journal.Node
    relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
  db: {type: journal.Node, properties: {value: {get_secret: db_password}}}
"""


@pytest.fixture
def web(cli, tmp_path: Path) -> str:
    (tmp_path / "bp.yaml").write_text(WEB)
    (tmp_path / "secrets.yaml").write_text("db_password: hunter2-secret\n")
    state = str(tmp_path / "state.db")
    result = cli("install", "bp.yaml", "--state", state, "--secrets", "secrets.yaml")
    assert result.returncode == 0, result.stderr
    return state


def runs(tmp_path: Path) -> list[str]:
    return [line for line in journal_lines(tmp_path) if line.startswith("run ")]


def test_operations_lists_what_each_node_offers(cli, web):
    listed = cli("operations", "--state", web, "--json")
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert [n["node"] for n in data["nodes"]] == ["app", "db"]  # journal.Host declares none
    app = data["nodes"][0]
    assert app["started"] == ["app_0", "app_1"]
    echo = next(op for op in app["operations"] if op["name"] == "echo")
    assert echo["inputs"]["text"]["required"] is True
    assert echo["inputs"]["times"] == {"type": "integer", "required": False, "default": 1}
    text = cli("operations", "--state", web).stdout
    assert "app (journal.Node, 2 of 2 instances started)" in text
    assert "-p text: string (required)  what to say" in text
    plugins = json.loads(cli("plugins", "list", "--json").stdout)
    journal = next(p for p in plugins["plugins"] if p["name"] == "journal")
    assert [op["name"] for op in journal["operations"]["journal.Node"]] == ["echo", "whoami", "read"]
    assert "operations of journal.Node: echo, whoami, read" in cli("plugins", "list").stdout


def test_execute_runs_on_every_started_instance_that_offers_it(cli, tmp_path, web):
    done = cli("execute", "--state", web, "echo", "-p", "text=hi", "-p", "times=3", "--json")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["summary"] == {"succeeded": 3, "failed": 0, "not run": 0}
    by_id = {r["instance"]: r for r in data["results"]}
    assert by_id["app_1"]["result"] == {"text": "hihihi", "address": "addr-app_1"}
    assert sorted(runs(tmp_path)) == ["run echo app_0", "run echo app_1", "run echo db_0"]
    # recorded as events, and nothing about the instances changed
    events = [json.loads(line) for line in cli("events", "--state", web, "--json").stdout.splitlines()]
    results = [e for e in events if e["type"] == "operation_result"]
    assert {e["instance"] for e in results} == {"app_0", "app_1", "db_0"}
    assert json.loads(results[0]["message"])["text"] == "hihihi"
    status = json.loads(cli("status", "--state", web, "--json").stdout)
    assert {i["state"] for i in status["instances"]} == {"started"}


def test_execute_chooses_by_node_or_instance_and_prints_text_results(cli, tmp_path, web):
    node = cli("execute", "--state", web, "whoami", "--node", "app")
    assert node.returncode == 0, node.stderr
    assert node.stdout == "app_0:\n  app_0\n  app\napp_1:\n  app_1\n  app\n"
    assert "whoami on 2 instances of deployment 'bp': 2 succeeded in " in node.stderr
    one = cli("execute", "--state", web, "echo", "--instance", "db_0", "-p", "text=x")
    assert one.returncode == 0, one.stderr
    assert one.stdout == 'db_0: {"text": "x", "address": "addr-db_0"}\n'
    assert runs(tmp_path)[-1] == "run echo db_0"


@pytest.mark.parametrize(("args", "expected"), [
    (["-p", "times=2"], "<-p>:1:1: operation 'echo' needs input 'text' (give -p text=VALUE): what to say"),
    (["-p", "text=a", "-p", "times=zero"], "<-p>:2:7: input 'times' of operation 'echo': expected integer"),
    (["-p", "text=a;times=0"], "<-p>:1:14: input 'times' of operation 'echo':"),
    (["-p", "text=a", "-p", "tmes=2"], "<-p>:2:1: operation 'echo' has no input 'tmes' (did you mean 'times'?)"),
    (["-p", "text"], "<-p>:1:1: inputs file 'text' does not exist (and is not KEY=VALUE)"),
])
def test_execute_refuses_bad_inputs_before_anything_runs(cli, tmp_path, web, args, expected):
    bad = cli("execute", "--state", web, "echo", *args)
    assert bad.returncode == 2, bad.stdout
    assert expected in bad.stderr
    assert "Traceback" not in bad.stderr
    assert runs(tmp_path) == []


def test_execute_inputs_from_a_yaml_file_point_at_the_file(cli, tmp_path, web):
    (tmp_path / "params.yaml").write_text("text: hello\ntimes: [1]\n")
    bad = cli("execute", "--state", web, "echo", "-p", "params.yaml")
    assert bad.returncode == 2
    assert "params.yaml:2:8: input 'times' of operation 'echo': expected integer, got list" in bad.stderr
    (tmp_path / "params.yaml").write_text("text: hello\ntimes: 2\n")
    good = cli("execute", "--state", web, "echo", "-p", "params.yaml", "--node", "db", "--json")
    assert json.loads(good.stdout)["results"][0]["result"]["text"] == "hellohello"


@pytest.mark.parametrize(("args", "expected"), [
    (["ecko"], "no node of deployment 'bp' has an operation 'ecko' (did you mean 'echo'?)"),
    (["echo", "--node", "vm", "-p", "text=a"], "node 'vm' (journal.Host) has no operation 'echo' "
                                               "(nodes that have it: app, db)"),
    (["echo", "--node", "ap", "-p", "text=a"], "no node template 'ap' (did you mean 'app'?)"),
    (["echo", "--instance", "app_7", "-p", "text=a"], "has no instance 'app_7'"),
    (["create"], "no node of deployment 'bp' has an operation 'create'"),
])
def test_execute_refuses_what_the_deployment_does_not_offer(cli, tmp_path, web, args, expected):
    bad = cli("execute", "--state", web, *args)
    assert bad.returncode == 2, bad.stdout
    assert expected in bad.stderr, bad.stderr
    assert runs(tmp_path) == []


def test_execute_runs_only_on_started_instances(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(WEB.replace("properties: {value: {get_secret: db_password}}",
                                                  "properties: {fatal: start}"))
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 1
    refused = cli("execute", "--state", state, "whoami", "--instance", "db_0")
    assert refused.returncode == 2 and "instance 'db_0' is failed: whoami runs on started instances" in refused.stderr
    status = json.loads(cli("status", "--state", state, "--json").stdout)
    started = {i["instance"] for i in status["instances"] if i["state"] == "started" and i["node"] != "vm"}
    some = cli("execute", "--state", state, "whoami", "--json")
    if started:  # the apps raced the failure
        assert {r["instance"] for r in json.loads(some.stdout)["results"]} == started
    else:
        assert some.returncode == 2 and "no started instance of app, db in deployment 'bp'" in some.stderr


def test_a_failing_operation_fails_its_instance_and_exits_1(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(WEB.replace("properties: {value: {get_secret: db_password}}",
                                                  "properties: {fatal: whoami}"))
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 0
    done = cli("execute", "--state", state, "whoami")
    assert done.returncode == 1
    assert "db_0: FAILED: whoami refused by the test" in done.stderr
    assert "app_0:\n  app_0\n  app\n" in done.stdout  # the others ran
    status = json.loads(cli("status", "--state", state, "--json").stdout)
    assert {i["state"] for i in status["instances"]} == {"started"}  # a failed operation changes no instance


def test_a_retried_operation_starts_from_where_its_last_attempt_got_to(cli, tmp_path):
    """Runtime changes of a custom operation are never recorded, but its retries see them: the
    journal counts failures there, so the third attempt succeeds (``wait_until`` works the same)."""
    (tmp_path / "bp.yaml").write_text(WEB.replace("properties: {value: {get_secret: db_password}}",
                                                  "properties: {fail: {whoami: 2}, retry_after: 0.01}"))
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 0
    done = cli("execute", "--state", state, "whoami", "--node", "db", "--json")
    assert done.returncode == 0, done.stderr
    assert runs(tmp_path) == ["run whoami db_0"] * 3
    again = cli("execute", "--state", state, "whoami", "--node", "db", "--retries", "1")
    assert again.returncode == 1  # the counts of the last execution were not recorded: it fails twice again
    assert "whoami failed on purpose (2/2)" in again.stderr


def test_secrets_are_masked_in_results_and_their_events(cli, tmp_path, web):
    done = cli("execute", "--state", web, "echo", "--node", "db", "-p", "text=hunter2-secret",
               "--secrets", "secrets.yaml", "--json")
    assert done.returncode == 0, done.stderr
    assert "hunter2" not in done.stdout
    assert "hunter2" not in cli("events", "--state", web).stdout


def test_a_blueprint_cannot_declare_operations(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_types:\n  my.Node:\n    derived_from: journal.Node\n"
                                      "    operations: {reboot: {}}\nnode_templates: {}\n")
    bad = cli("validate", "bp.yaml")
    assert bad.returncode == 2
    assert "bp.yaml:4:5: node type 'my.Node': operations are declared by the plugin" in bad.stderr


def test_a_blueprint_type_inherits_its_plugin_types_operations(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text("node_types:\n  my.Node: {derived_from: journal.Node}\n"
                                      "node_templates:\n  n: {type: my.Node}\n")
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state).returncode == 0
    done = cli("execute", "--state", state, "whoami")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "n_0:\n  n_0\n  n\n"
