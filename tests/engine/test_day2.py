"""Day 2 through the real CLI and a real entry-point plugin: plan -d, update, drift, stable ids.

The journal plugin records every hook call; ``resources`` counts, per instance, creates
minus deletes from it: what really exists after any sequence of runs, kills included.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
from pathlib import Path

import pytest
from engine_helpers import journal_lines, wait_for

pytestmark = pytest.mark.integration
SEEDS = [int(s) for s in os.environ.get("ORCH_TEST_SEEDS", "1,2,3").split(",")]  # more: ORCH_TEST_SEEDS=1,...,50

BASE = """
inputs:
  replicas: {default: 1}
node_templates:
  vm: {type: journal.Host, instances: 2}
  app:
    type: journal.Node
    instances: {get_input: replicas}
    properties: {value: one}
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
      - {type: journal.connected_to, target: db}
  db: {type: journal.Node}
  cache: {type: journal.Node}
outputs:
  db: {value: {get_attribute: [db, address]}}
"""


def resources(tmp_path: Path) -> dict[str, int]:
    """What really exists (the plugin's resource files), by instance."""
    folder = tmp_path / "journal.log.res"
    return {p.name: 1 for p in folder.iterdir()} if folder.exists() else {}


def diff(cli, state: str, *args: str) -> dict:
    result = cli("plan", "bp.yaml", "-d", "bp", "--state", state, "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def actions(data: dict) -> dict[str, str]:
    return {c["instance"]: c["action"] for c in data["changes"]}


@pytest.fixture
def installed(cli, tmp_path: Path) -> str:
    (tmp_path / "bp.yaml").write_text(BASE)
    state = str(tmp_path / "state.db")
    result = cli("install", "bp.yaml", "--state", state)
    assert result.returncode == 0, result.stderr
    return state


def test_plan_against_a_deployment_shows_each_kind_of_change(cli, tmp_path, installed):
    assert diff(cli, installed) == {"deployment": "bp", "blueprint": "bp.yaml", "changes": [], "outputs": {},
                                    "summary": {"create": 0, "update": 0, "replace": 0, "delete": 0, "unchanged": 6}}
    text = cli("plan", "bp.yaml", "-d", "bp", "--state", installed)
    assert "No changes: deployment 'bp' matches bp.yaml (6 instances)." in text.stdout
    (tmp_path / "bp.yaml").write_text(BASE.replace("properties: {value: one}", "properties: {value: two}")
                                      .replace("  db: {type: journal.Node}", "  db: {type: journal.Host}")
                                      .replace("  cache: {type: journal.Node}\n", "")
                                      .replace("  db: {value: {get_attribute: [db, address]}}",
                                               "  db: {value: {get_attribute: [db, ip]}}"))
    data = diff(cli, installed, "-i", "replicas=2")
    assert actions(data) == {"app_0": "update", "app_2": "create", "app_1": "update", "app_3": "create",
                             "db_0": "replace", "cache_0": "delete"}
    app = next(c for c in data["changes"] if c["instance"] == "app_0")
    assert app["properties"] == [{"path": "value", "old": "one", "new": "two"}]
    assert app["relationships"] == {"relink": ["db_0/journal.connected_to"]}  # its target is replaced
    db = next(c for c in data["changes"] if c["instance"] == "db_0")
    assert db["reason"] == "its type changed from journal.Node"
    assert data["outputs"] == {"db": {"old": {"get_attribute": ["db", "address"]},
                                      "new": {"get_attribute": ["db", "ip"]}, "added": False, "removed": False}}
    assert data["summary"] == {"create": 2, "update": 2, "replace": 1, "delete": 1, "unchanged": 2}
    text = " ".join(cli("plan", "bp.yaml", "-d", "bp", "--state", installed, "-i", "replicas=2").stdout.split())
    for line in ("2 to create, 2 to update, 1 to replace, 1 to delete; 2 unchanged",
                 "~ app_0 journal.Node update", 'value: "one" -> "two"',
                 "↻ relationship db_0/journal.connected_to", "-/+ db_0 journal.Host replace (its type changed",
                 "- cache_0 journal.Node delete", "+ app_2 journal.Node create"):
        assert line in text, (line, text)


def test_a_property_marked_replace_on_change_and_relationship_changes(cli, tmp_path, installed):
    (tmp_path / "bp.yaml").write_text(BASE.replace("properties: {value: one}", "properties: {value: one, zone: b}")
                                      .replace("      - {type: journal.connected_to, target: db}\n",
                                               "      - {type: journal.connected_to, target: cache}\n"))
    data = diff(cli, installed)
    app = next(c for c in data["changes"] if c["instance"] == "app_0")
    assert app["action"] == "replace" and app["reason"] == "property zone cannot change in place"
    assert app["relationships"] == {"added": ["cache_0/journal.connected_to"],
                                    "removed": ["db_0/journal.connected_to"]}


def test_update_applies_every_kind_and_ids_keep_their_meaning(cli, tmp_path, installed):
    before = {i: journal_lines(tmp_path).count(f"done create {i}") for i in ("vm_0", "vm_1", "app_0", "app_1")}
    assert before == {"vm_0": 1, "vm_1": 1, "app_0": 1, "app_1": 1}
    (tmp_path / "bp.yaml").write_text(BASE.replace("properties: {value: one}", "properties: {value: two}")
                                      .replace("  db: {type: journal.Node}", "  db: {type: journal.Node, "
                                               "properties: {zone: b}}")
                                      .replace("  cache: {type: journal.Node}\n", ""))
    mark = len(journal_lines(tmp_path))
    result = cli("update", "bp.yaml", "-d", "bp", "--state", installed, "-i", "replicas=2")
    assert result.returncode == 0, result.stderr
    run = journal_lines(tmp_path)[mark:]
    assert "update app_0 value" in run and "update app_1 value" in run  # in place
    assert run.index("done delete db_0") < run.index("create db_0")  # replaced: deleted first
    assert run.index("unlink app_0 db_0") < run.index("delete db_0")  # its neighbours unlink before ...
    assert run.index("done start db_0") < run.index("establish app_0 db_0")  # ... and establish after
    assert "delete cache_0" in run and "create cache_0" not in run
    assert not [line for line in run if line.split()[-1] in ("vm_0", "vm_1") and line.startswith("create")]
    assert resources(tmp_path) == {i: 1 for i in ("vm_0", "vm_1", "app_0", "app_1", "app_2", "app_3", "db_0")}
    status = json.loads(cli("status", "--state", installed, "--json").stdout)
    hosts = {i["instance"]: i["state"] for i in status["instances"]}
    assert hosts == dict.fromkeys(("vm_0", "vm_1", "app_0", "app_2", "app_1", "app_3", "db_0"), "started")
    with sqlite3.connect(installed) as db:
        plan = json.loads(db.execute("SELECT plan FROM deployments").fetchone()[0])
    host_of = {i[0]: i[2] for i in plan["instances"]}
    assert host_of["app_0"] == "vm_0" and host_of["app_1"] == "vm_1"  # kept their hosts
    assert {host_of["app_2"], host_of["app_3"]} == {"vm_0", "vm_1"}  # new ids for new instances
    assert diff(cli, installed, "-i", "replicas=2")["changes"] == []
    # scaling down removes the newest, and a later scale-up never reuses an id
    assert cli("update", "bp.yaml", "-d", "bp", "--state", installed).returncode == 0
    assert sorted(resources(tmp_path)) == ["app_0", "app_1", "db_0", "vm_0", "vm_1"]
    assert actions(diff(cli, installed, "-i", "replicas=2")) == {"app_4": "create", "app_5": "create"}


def test_install_does_not_apply_changes_to_a_live_deployment(cli, tmp_path, installed):
    (tmp_path / "bp.yaml").write_text(BASE.replace("  cache: {type: journal.Node}\n", ""))
    refused = cli("install", "bp.yaml", "--state", installed)
    assert refused.returncode == 2
    assert "(1 to delete)" in refused.stderr and "orchestrator update bp.yaml -d bp" in refused.stderr


@pytest.mark.parametrize("seed", SEEDS)
def test_update_killed_at_random_points_then_rerun_leaves_each_resource_once(cli, tmp_path, installed, seed):
    rng = random.Random(seed)
    changed = (BASE.replace("properties: {value: one}", "properties: {value: two, sleep: 0.05}")
               .replace("  db: {type: journal.Node}", "  db: {type: journal.Node, properties: {zone: b, sleep: 0.05}}")
               .replace("  cache: {type: journal.Node}\n", "  extra: {type: journal.Node, instances: 2}\n"))
    (tmp_path / "bp.yaml").write_text(changed)
    for _ in range(3):
        proc = cli("update", "bp.yaml", "-d", "bp", "--state", installed, "-i", "replicas=3", background=True)
        mark = len(journal_lines(tmp_path))
        wait_for(lambda mark=mark: len(journal_lines(tmp_path)) > mark + rng.randint(1, 12), what="progress")
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    result = cli("update", "bp.yaml", "-d", "bp", "--state", installed, "-i", "replicas=3")
    assert result.returncode == 0, result.stderr
    expected = {"vm_0", "vm_1", "db_0", "extra_0", "extra_1", *(f"app_{n}" for n in range(6))}
    assert resources(tmp_path) == dict.fromkeys(expected, 1)
    assert diff(cli, installed, "-i", "replicas=3")["changes"] == []


def test_drift_reports_in_sync_drifted_and_gone_and_exit_code(cli, tmp_path, installed):
    clean = cli("drift", "--state", installed, "--exit-code")
    assert clean.returncode == 0, clean.stderr
    assert "drift of deployment 'bp': 6 in sync" in clean.stdout
    journal = tmp_path / "journal.log"
    Path(f"{journal}.drift.db_0").write_text(json.dumps({"value": {"recorded": "x", "actual": "y"}}))
    Path(f"{journal}.drift.cache_0").write_text('"gone"')
    text = cli("drift", "--state", installed)
    assert text.returncode == 0
    assert "4 in sync, 1 drifted, 1 gone" in text.stdout and "db_0     journal.Node  drifted  value:" in text.stdout
    data = json.loads(cli("drift", "--state", installed, "--json").stdout)
    assert data["summary"] == {"in sync": 4, "drifted": 1, "gone": 1, "failed": 0}
    assert cli("drift", "--state", installed, "--exit-code").returncode == 3
    with sqlite3.connect(installed) as db:
        states = {s for (s,) in db.execute("SELECT state FROM instances")}
    assert states == {"started"}  # a check changes nothing


# ---------------------------------------------------------------- heal and scale


WEB = """
node_templates:
  vm: {type: journal.Host, instances: 2}
  app:
    type: journal.Node
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
      - {type: journal.connected_to, target: db}
  db: {type: journal.Node}
  lb: {type: journal.Node, relationships: [{type: journal.connected_to, target: app}]}
outputs:
  apps: {value: {get_attribute: [app, address]}}
"""


@pytest.fixture
def web(cli, tmp_path: Path) -> str:
    (tmp_path / "bp.yaml").write_text(WEB)
    state = str(tmp_path / "state.db")
    result = cli("install", "bp.yaml", "--state", state)
    assert result.returncode == 0, result.stderr
    return state


def touched(lines: list[str]) -> set[str]:
    """Instances whose own hooks ran (relationship hooks count for the source)."""
    return {line.split()[1] for line in lines if not line.startswith(("done ", "check_drift "))}


def test_heal_reinstalls_what_is_gone_with_what_it_contains_and_nothing_else(cli, tmp_path, web):
    Path(f"{tmp_path / 'journal.log'}.drift.vm_1").write_text('"gone"')
    dry = cli("heal", "--state", web, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert actions(json.loads(dry.stdout)) == {"vm_1": "replace", "app_1": "replace", "lb_0": "update"}
    assert resources(tmp_path) == dict.fromkeys(("vm_0", "vm_1", "app_0", "app_1", "db_0", "lb_0"), 1)
    mark = len(journal_lines(tmp_path))
    healed = cli("heal", "--state", web)
    assert healed.returncode == 0, healed.stderr
    run = journal_lines(tmp_path)[mark:]
    assert touched(run) == {"vm_1", "app_1", "lb_0"}  # db, vm_0, app_0 untouched
    assert [line for line in run if " lb_0" in line and not line.startswith("check_drift")] == [
        "unlink lb_0 app_1", "establish lb_0 app_1"]  # the lb re-associated with the new app only
    assert run.index("done delete app_1") < run.index("delete vm_1")  # contained first
    assert run.index("done start vm_1") < run.index("create app_1")  # and back on the new host
    Path(f"{tmp_path / 'journal.log'}.drift.vm_1").unlink()
    again = cli("heal", "--state", web, "--dry-run")
    assert "nothing to do" in again.stdout


def test_heal_of_a_failed_instance_and_of_a_named_one(cli, tmp_path):
    (tmp_path / "bp.yaml").write_text(WEB.replace("  db: {type: journal.Node}", "  db: {type: journal.Node, "
                                                  "properties: {fail: {start: 1}, retry_after: 0.01}}"))
    state = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", state, "--retries", "0").returncode == 1
    plan = cli("heal", "--state", state, "--dry-run", "--json")
    data = json.loads(plan.stdout)
    assert actions(data) == {"app_0": "update", "app_1": "update", "db_0": "replace"}  # apps relink to db
    assert next(c for c in data["changes"] if c["instance"] == "db_0")["reason"].startswith("failed: start")
    mark = len(journal_lines(tmp_path))
    healed = cli("heal", "--state", state, "--yes")  # its start fails once more, then succeeds
    assert healed.returncode == 0, healed.stderr
    assert touched(journal_lines(tmp_path)[mark:]) == {"db_0"}  # the unfinished apps are install's to finish
    named = json.loads(cli("heal", "--state", state, "--instance", "vm_0", "--dry-run", "--json").stdout)
    assert actions(named) == {"vm_0": "replace", "app_0": "replace", "lb_0": "update"}
    unknown = cli("heal", "--state", state, "--instance", "vm_9")
    assert unknown.returncode == 2 and "no instance 'vm_9'" in unknown.stderr


def test_scale_out_and_in_with_contained_instances_and_relationships(cli, tmp_path, web):
    out = cli("scale", "--state", web, "vm=+1")
    assert out.returncode == 0, out.stderr
    assert resources(tmp_path) == dict.fromkeys(("vm_0", "vm_1", "vm_2", "app_0", "app_1", "app_2", "db_0",
                                                 "lb_0"), 1)
    assert "establish lb_0 app_2" in journal_lines(tmp_path)  # relationships to the new one
    outputs = json.loads(cli("outputs", "--state", web, "--json").stdout)
    assert outputs == {"apps": ["addr-app_0", "addr-app_1", "addr-app_2"]}
    inn = cli("scale", "--state", web, "--remove", "vm_0")
    assert inn.returncode == 0, inn.stderr
    assert sorted(resources(tmp_path)) == ["app_1", "app_2", "db_0", "lb_0", "vm_1", "vm_2"]
    assert json.loads(cli("outputs", "--state", web, "--json").stdout) == {"apps": ["addr-app_1", "addr-app_2"]}
    assert diff(cli, web)["changes"] == []  # two vms, as the blueprint says: it holds no scale "override"
    assert cli("scale", "--state", web, "vm=3").returncode == 0
    back = diff(cli, web)  # the blueprint's own count comes back with the next update
    assert actions(back) == {"lb_0": "update", "vm_3": "delete", "app_3": "delete"}
    bad = cli("scale", "--state", web, "nope=2")
    assert bad.returncode == 2 and "no node template 'nope'" in bad.stderr
    (tmp_path / "bp.yaml").write_text(WEB.replace("  db: {type: journal.Node}",
                                                  "  db: {type: journal.Node, properties: {value: 1}}"))
    changed = cli("scale", "--state", web, "vm=+1")
    assert changed.returncode == 2 and "changed since deployment 'bp'" in changed.stderr


def test_a_removal_run_again_after_it_succeeded_has_nothing_to_do(cli, tmp_path, web):
    # Its process may have been killed after the removal succeeded, before it could say so.
    assert cli("scale", "--state", web, "--remove", "vm_0", "--yes").returncode == 0
    again = cli("scale", "--state", web, "--remove", "vm_0", "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert sorted(resources(tmp_path)) == ["app_1", "db_0", "lb_0", "vm_1"]
    other = cli("scale", "--state", web, "--remove", "vm_0", "--remove", "vm_1", "--yes")
    assert other.returncode == 2 and "no instance 'vm_0'" in other.stderr  # another request: vm_0 is a typo there


@pytest.mark.parametrize("scale", [["vm=+1"], ["--remove", "vm_0"]])
def test_a_scale_killed_after_it_settled_but_before_its_end_resumes_with_nothing_to_do(cli, tmp_path, web, scale):
    # The removal's rows are forgotten when it settles; its end is the next write. A kill between
    # the two leaves an unfinished request whose removed instance has no row any more.
    assert cli("scale", "--state", web, *scale, "--yes").returncode == 0
    with contextlib.closing(sqlite3.connect(web)) as db, db:
        db.execute("UPDATE executions SET status = 'failed', error = 'interrupted' "
                   "WHERE id = (SELECT max(id) FROM executions)")
    kept = resources(tmp_path)
    again = cli("scale", "--state", web, *scale, "--yes")
    assert again.returncode == 0, again.stderr
    assert "nothing to do" in again.stdout
    assert resources(tmp_path) == kept


@pytest.mark.parametrize("seed", SEEDS)
def test_heal_and_scale_killed_at_random_points_then_rerun_do_everything_once(cli, tmp_path, seed):
    rng = random.Random(seed)
    (tmp_path / "bp.yaml").write_text(WEB.replace("{type: journal.Host, instances: 2}",
                                                  "{type: journal.Host, instances: 2, properties: {sleep: 0.03}}"))
    web = str(tmp_path / "state.db")
    assert cli("install", "bp.yaml", "--state", web).returncode == 0
    for command in (["scale", "vm=+2"], ["heal", "--instance", "vm_1"], ["scale", "--remove", "vm_0"]):
        proc = cli(*command, "--state", web, "--yes", background=True)
        mark = len(journal_lines(tmp_path))
        try:
            wait_for(lambda mark=mark: len(journal_lines(tmp_path)) > mark + rng.randint(1, 10), timeout=10,
                     what="progress")
        except AssertionError:
            pass  # it may finish first
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.returncode == 0:
            continue  # it finished before the kill
        if command[0] == "heal":  # a heal resumed is a heal of what is unfinished
            result = cli("heal", "--state", web, "--instance", "vm_1", "--yes")
        else:  # the same scale again: it resumes toward the target it set (not one more "+2")
            result = cli(*command[:1], "--state", web, "--yes", *command[1:])
        assert result.returncode == 0, result.stderr
    expected = {"vm_1", "vm_2", "vm_3", "app_1", "app_2", "app_3", "db_0", "lb_0"}
    assert resources(tmp_path) == dict.fromkeys(expected, 1)
    status = json.loads(cli("status", "--state", web, "--json").stdout)
    assert {i["instance"]: i["state"] for i in status["instances"]} == dict.fromkeys(expected, "started")
