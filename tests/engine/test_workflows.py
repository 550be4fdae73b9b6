"""install / uninstall: order, retries, failures, resume, runtime properties, secrets, resources."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from orchestrator.engine.runner import Options

CHAIN = """
node_templates:
  a: {type: journal.Node}
  b: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: a}]}
  c: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: b}]}
"""

HOSTS = """
node_templates:
  vm: {type: journal.Host, instances: 2}
  app:
    type: journal.Node
    instances: 2
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
      - {type: journal.connected_to, target: db, properties: {port: 5432}}
  db: {type: journal.Node}
"""


def positions(calls, hook):
    return {c.instance: n for n, c in enumerate(calls) if c.hook == hook}


def test_chain_installs_in_dependency_order_and_uninstalls_in_reverse(orch, jplugin):
    orch.use(jplugin)
    run = orch.install(CHAIN)
    assert run.ok, run.failures
    # the core's depends_on implements no relationship hook: none is called (the recorder
    # is a wrapper, and a wrapper never adds operations)
    install = ["create", "configure", "start"]
    assert [c.hook + " " + c.instance.split("->")[0] for c in run.calls] == (
        ["create a_0", "configure a_0", "start a_0"]
        + [f"{op} b_0" for op in install] + [f"{op} c_0" for op in install])
    assert set(run.states.values()) == {"started"}
    run = orch.uninstall()
    assert [c.hook + " " + c.instance.split("->")[0] for c in run.calls] == (
        [f"{op} c_0" for op in ("stop", "delete")]
        + [f"{op} b_0" for op in ("stop", "delete")] + ["stop a_0", "delete a_0"])
    assert set(run.states.values()) == {"deleted"}


def test_fan_out_targets_first_then_all_sources(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          hub: {type: journal.Node}
          leaf: {type: journal.Node, instances: 5,
                 relationships: [{type: orchestrator.relationships.depends_on, target: hub}]}
    """)
    assert run.ok
    started = positions(run.calls, "start")
    created = positions(run.calls, "create")
    assert all(started["hub_0"] < created[f"leaf_{i}"] for i in range(5))
    run = orch.uninstall()
    stopped, deleted = positions(run.calls, "stop"), positions(run.calls, "delete")
    assert all(deleted[f"leaf_{i}"] < stopped["hub_0"] for i in range(5))


def test_contained_in_replicates_per_host_and_relationship_hooks_see_source_and_target(orch, jplugin):
    orch.use(jplugin)
    run = orch.install(HOSTS)
    assert run.ok, run.failures
    assert sorted(run.states) == ["app_0", "app_1", "app_2", "app_3", "db_0", "vm_0", "vm_1"]
    calls = run.calls
    hosts = {"app_0": "vm_0", "app_1": "vm_0", "app_2": "vm_1", "app_3": "vm_1"}
    for app, vm in hosts.items():
        mine = [c.hook for c in calls if c.instance.split("->")[0] == app]
        # per instance: create, preconfigure, configure, postconfigure, start, establish (of the
        # journal.connected_to relationship; the core's contained_in implements no hook)
        assert mine == ["create", "preconfigure", "configure", "postconfigure", "start", "establish"], mine
        assert positions(calls, "start")[vm] < positions(calls, "create")[app]
        assert positions(calls, "start")["db_0"] < positions(calls, "create")[app]
    assert sorted(c.instance for c in calls if c.hook == "establish") == sorted(f"{a}->db_0" for a in hosts)
    # establish wrote into the target's runtime properties, key by key, from four sources at once
    assert {k: v for k, v in run.runtime_properties["db_0"].items() if k.startswith("peer_")} == {
        f"peer_{a}": 5432 for a in hosts}
    run = orch.uninstall()
    assert run.ok
    assert sorted(c.instance for c in run.calls if c.hook == "unlink") == sorted(f"{a}->db_0" for a in hosts)


def test_recoverable_errors_are_retried_then_succeed(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          a: {type: journal.Node, properties: {fail: {create: 2, start: 1}, retry_after: 0.01}}
    """)
    assert run.ok, run.failures
    assert [c.hook for c in run.calls] == ["create", "create", "create", "configure", "start", "start"]
    assert [c.outcome for c in run.calls if c.hook == "create"] == ["RecoverableError", "RecoverableError", "ok"]
    retried = [e for e in run.events if e.type == "operation_retrying"]
    assert len(retried) == 3 and "retry 1 of 5" in retried[0].message
    # runtime properties saved by failed attempts are kept for the next attempt
    assert run.runtime_properties["a_0"]["failures_create"] == 2


def test_an_instance_waiting_for_a_retry_gives_its_worker_to_other_instances(orch, jplugin):
    """With one worker, a retry after 1 s does not hold it: the other instance runs meanwhile."""
    import time

    orch.use(jplugin)
    started = time.monotonic()
    run = orch.install("""
        node_templates:
          waits: {type: journal.Node, properties: {fail: {create: 1}, retry_after: 1.0}}
          other: {type: journal.Node, properties: {sleep: 0.3}}
    """, options=Options(concurrency=1))
    assert run.ok, run.failures
    assert time.monotonic() - started < 1.7  # not 1 s of waiting plus 3 x 0.3 s of other's work
    order = [f"{c.hook} {c.instance}" for c in run.calls]
    assert order.index("start other_0") < order.index("create waits_0", 1)  # other finished during the wait


def test_retries_are_exhausted_then_the_workflow_fails(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("node_templates: {a: {type: journal.Node, properties: {fail: {create: 9}}}}",
                       options=Options(retries=2, retry_interval=0.001))
    assert not run.ok
    (failure,) = run.failures
    assert (failure.instance, failure.operation, failure.plugin) == ("a_0", "create", "jplugin") or \
        (failure.instance, failure.operation) == ("a_0", "create")
    assert "gave up after 2 retries" in failure.message
    assert len(run.calls) == 3


def test_non_recoverable_fails_at_once_and_nothing_new_starts(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          a: {type: journal.Node, properties: {fatal: configure}}
          b: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: a}]}
    """)
    assert not run.ok
    (failure,) = run.failures
    assert failure.instance == "a_0" and failure.operation == "configure"
    assert failure.message == "configure refused by the test"
    assert [c.hook for c in run.calls] == ["create", "configure"]  # one attempt; b never started
    assert run.states == {"a_0": "failed", "b_0": "uninitialized"}


def test_running_operations_finish_after_a_failure_but_no_new_ones_start(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          bad: {type: journal.Node, properties: {fatal: create, sleep: 0.05}}
          slow: {type: journal.Node, properties: {sleep: 0.3}}
          later: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: slow}]}
    """, options=Options(concurrency=2, retries=0))
    assert not run.ok
    # slow's create was running when bad failed: it finished, and nothing after it started
    assert run.states["slow_0"] == "created"
    assert [c.hook for c in run.calls if c.instance == "slow_0"] == ["create"]
    assert "later_0" not in {c.instance for c in run.calls}


def test_uninstall_of_a_partial_install_undoes_only_what_was_attempted(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          a: {type: journal.Node}
          b: {type: journal.Node, properties: {fatal: start},
              relationships: [{type: journal.connected_to, target: a}]}
          c: {type: journal.Node, relationships: [{type: orchestrator.relationships.depends_on, target: b}]}
    """)
    assert not run.ok
    run = orch.uninstall()
    assert run.ok, run.failures
    done = [(c.hook, c.instance) for c in run.calls]
    assert ("stop", "b_0") in done and ("delete", "b_0") in done  # start was attempted on b
    assert ("unlink", "b_0->a_0") not in done  # establish never ran
    assert not any(i == "c_0" for _, i in done)  # c never created: nothing to undo
    assert run.states == {"a_0": "deleted", "b_0": "deleted", "c_0": "uninitialized"}


def test_rerun_after_failure_continues_and_repeats_nothing_finished(orch, jplugin, journal):
    orch.use(jplugin)
    bp = orch.blueprint("""
        inputs:
          fatal: {type: string, default: start}
        node_templates:
          a: {type: journal.Node}
          b: {type: journal.Node, properties: {fatal: {get_input: fatal}},
              relationships: [{type: orchestrator.relationships.depends_on, target: a}]}
    """)
    assert not orch.install(bp).ok
    run = orch.install(bp, inputs={"fatal": ""})  # the user fixed the blueprint's input
    assert run.ok, run.failures
    assert journal.calls("create") == ["a_0", "b_0"]  # each created exactly once
    assert journal.calls("update") == ["b_0 fatal"]  # the created b gets its changed property
    assert journal.calls("start") == ["a_0", "b_0", "b_0"]  # b's failed start runs again
    assert [(c.hook, c.instance) for c in run.calls] == [("update", "b_0"), ("start", "b_0")]


def test_install_of_a_changed_blueprint_on_a_live_deployment_is_refused_for_update(orch, jplugin):
    from orchestrator.deployments import UsageError

    orch.use(jplugin)
    assert orch.install("node_templates: {a: {type: journal.Node}}").ok
    with pytest.raises(UsageError, match="apply them with 'orchestrator update"):
        orch.install("node_templates: {a: {type: journal.Node, properties: {sleep: 0.001}}}")
    # more instances of a template only add: install does that
    assert orch.install("node_templates: {a: {type: journal.Node, instances: 2}}").ok


def test_get_attribute_resolves_runtime_properties_of_related_instances(orch, jplugin):
    orch.use(jplugin)
    run = orch.install("""
        node_templates:
          db: {type: journal.Node}
          app:
            type: journal.Node
            properties: {value: {concat: ["db at ", {get_attribute: [db, address]}]}}
            relationships: [{type: orchestrator.relationships.depends_on, target: db}]
        outputs:
          app_value: {value: {get_property: [app, fail]}}
          address: {value: {get_attribute: [db, address]}}
          created: {value: {get_attribute: [app, created]}}
    """)
    assert run.ok
    assert run.outputs == {"app_value": {}, "address": "addr-db_0", "created": 1}


def test_secrets_reach_hooks_but_never_events_or_state(orch, tmp_path):
    from typing import Any

    from orchestrator import hookimpl

    seen = {}

    class Secretive:
        __name__ = "secretive"

        @hookimpl
        def register_types(self) -> dict[str, Any]:
            return {"node_types": {"s.Thing": {"properties": {"password": {"type": "string"}}}}}

        @hookimpl
        def create(self, ctx: Any) -> None:
            seen["password"] = ctx.node.properties["password"]
            ctx.logger.info("connecting with %s", ctx.node.properties["password"])
            raise RuntimeError(f"login with {ctx.node.properties['password']} failed")

    orch.use(Secretive())
    run = orch.install("""
        node_templates:
          s: {type: s.Thing, properties: {password: {get_secret: db_password}}}
    """, secrets={"db_password": "hunter2-very-secret"}, options=Options(retries=0))
    assert seen["password"] == "hunter2-very-secret"
    texts = [e.message for e in run.events] + [f.message for f in run.failures]
    assert any("******" in t for t in texts)
    assert not any("hunter2" in t for t in texts)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("state.db*"))
    assert b"hunter2" not in raw
    with sqlite3.connect(tmp_path / "state.db") as db:
        assert "get_secret" in db.execute("SELECT plan FROM deployments").fetchone()[0]


def test_missing_secret_is_reported_before_anything_runs(orch, jplugin):
    from orchestrator.dsl.problems import BlueprintError

    orch.use(jplugin)
    with pytest.raises(BlueprintError, match=r"secret 'token' is not set .*ORCHESTRATOR_SECRET_TOKEN"):
        orch.install("node_templates: {a: {type: journal.Node, properties: {value: {get_secret: token}}}}",
                     secrets={})


def test_resources_beside_the_blueprint(orch, tmp_path):
    from typing import Any

    from orchestrator import NonRecoverableError, hookimpl

    got = {}

    class Reader:
        __name__ = "reader"

        @hookimpl
        def register_types(self) -> dict[str, Any]:
            return {"node_types": {"r.Thing": {"properties": {"who": {"type": "string"}}}}}

        @hookimpl
        def create(self, ctx: Any) -> None:
            got["raw"] = ctx.get_resource("files/hello.txt")
            got["rendered"] = ctx.get_resource_and_render("files/hello.j2", {"greeting": "hi"})
            with open(ctx.download_resource("files/hello.txt")) as f:
                got["copy"] = f.read()
            try:
                ctx.get_resource("../outside.txt")
            except NonRecoverableError as exc:
                got["escape"] = str(exc)
            try:
                ctx.node.properties["who"] = "x"
            except NonRecoverableError as exc:
                got["readonly"] = str(exc)

    (tmp_path / "files").mkdir()
    (tmp_path / "files/hello.txt").write_text("hello")
    (tmp_path / "files/hello.j2").write_text("{{ greeting }} {{ ctx.node.properties.who }} from {{ ctx.instance.id }}")
    (tmp_path / "outside.txt").write_text("no")
    orch.use(Reader())
    run = orch.install("node_templates: {r: {type: r.Thing, properties: {who: world}}}")
    assert run.ok, run.failures
    assert got["raw"] == b"hello" and got["copy"] == "hello"
    assert got["rendered"] == b"hi world from r_0"
    assert "outside the blueprint" in got["escape"] or "not found" in got["escape"]
    assert "read-only" in got["readonly"]


def test_update_persists_runtime_properties_during_the_operation(orch, tmp_path):
    from typing import Any

    from orchestrator import hookimpl

    observed = {}

    class Saver:
        __name__ = "saver"

        @hookimpl
        def register_types(self) -> dict[str, Any]:
            return {"node_types": {"v.Thing": {}}}

        @hookimpl
        def create(self, ctx: Any) -> None:
            ctx.instance.runtime_properties["resource_id"] = "r-123"
            ctx.instance.update()
            with sqlite3.connect(tmp_path / "state.db") as db:
                observed["row"] = db.execute("SELECT state, runtime FROM instances").fetchone()

    orch.use(Saver())
    assert orch.install("node_templates: {v: {type: v.Thing}}").ok
    assert observed["row"] == ("creating", '{"resource_id": "r-123"}')


def test_uninstall_needs_only_the_secrets_its_hooks_read(orch):
    from typing import Any

    from orchestrator import hookimpl

    read = []

    class Registry:
        __name__ = "registry"

        @hookimpl
        def register_types(self) -> dict[str, Any]:
            return {"node_types": {"r.Image": {"properties": {"password": {"type": "string"},
                                                              "name": {"type": "string"}}},
                                   "r.Strict": {"properties": {"password": {"type": "string"}}}}}

        @hookimpl
        def create(self, ctx: Any) -> None:
            read.append(ctx.node.properties["password"])

        @hookimpl
        def delete(self, ctx: Any) -> None:
            if ctx.node.type == "r.Strict":
                read.append(ctx.node.properties["password"])  # this one needs it
            else:
                read.append(ctx.node.properties["name"])

    orch.use(Registry())
    bp = """
        node_templates:
          image: {type: r.Image, properties: {name: busybox, password: {get_secret: pw}},
                  relationships: [{type: orchestrator.relationships.depends_on, target: strict}]}
          strict: {type: r.Strict, properties: {password: {get_secret: pw}}}
    """
    assert orch.install(bp, secrets={"pw": "s3cret-value"}).ok
    run = orch.uninstall(secrets={})
    assert not run.ok
    (failure,) = run.failures
    assert failure.instance == "strict_0" and failure.operation == "delete"
    assert "property 'password': secret 'pw' is not set" in failure.message
    assert run.states["image_0"] == "deleted" and "busybox" in read  # uninstalled first: a dependent


def test_the_command_lines_run_options_reach_the_workflow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``--concurrency``, ``--retries``, ``--retry-interval``, ``--operation-timeout``, the executor
    and uninstall's ``--ignore-failures`` arrive in the run's ``Options``; unset ones keep their defaults."""
    from click.testing import CliRunner

    from orchestrator import deployments
    from orchestrator.cli import cli

    seen: list[Options] = []
    original = deployments.Prepared.run

    def run(self, options=None, listeners=(), interrupt=None):  # type: ignore[no-untyped-def]
        seen.append(options)
        return original(self, options, listeners, interrupt)

    monkeypatch.setattr(deployments.Prepared, "run", run)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bp.yaml").write_text("node_templates:\n  one: {type: orchestrator.nodes.Root}\n")
    state = ["--state", str(tmp_path / "state.db")]
    done = CliRunner().invoke(cli, ["install", "bp.yaml", *state, "--concurrency", "3", "--retries", "1",
                                    "--retry-interval", "0.5", "--operation-timeout", "7", "--queue", "q1"])
    assert done.exit_code == 0, done.output
    done = CliRunner().invoke(cli, ["uninstall", *state, "--ignore-failures"])
    assert done.exit_code == 0, done.output
    first, second = seen
    assert (first.concurrency, first.retries, first.retry_interval, first.operation_timeout) == (3, 1, 0.5, 7.0)
    assert (first.executor, first.queue, first.ignore_failures) == ("local", "q1", False)
    assert second == Options(ignore_failures=True)
