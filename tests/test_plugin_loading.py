"""Plugin discovery through real entry points: broken plugins are reported, never fatal.

Each test plugin is a tiny distribution made on the fly: a module plus a
``NAME-VERSION.dist-info`` folder (``METADATA`` and ``entry_points.txt``) in a temporary
directory. ``importlib.metadata`` finds dist-info folders on ``sys.path``, so putting
the directory on ``sys.path`` (in-process) or ``PYTHONPATH`` (for the CLI, run in a
subprocess) is exactly how an installed plugin is found; no pip, no mocks.

Other plugins installed in the venv (aws, docker, hello) load too: the checks are about
the test plugins and must hold whatever else is installed.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from testenv.dists import write_distribution

from orchestrator.plugins import get_plugin_manager

HEALTHY = '''
from pathlib import Path

from orchestrator import RecoverableError, hookimpl


@hookimpl
def register_types():
    return {
        "node_types": {
            "olt.Marker": {"derived_from": "orchestrator.nodes.Root",
                           "properties": {"path": {"type": "string"}}},
        },
        "relationships": {
            "olt.next_to": {"derived_from": "orchestrator.relationships.connected_to"},
        },
    }


@hookimpl
def create(ctx):
    Path(ctx.node.properties["path"]).write_text(ctx.instance.id)
    ctx.instance.runtime_properties["path"] = ctx.node.properties["path"]


@hookimpl
def configure(ctx):
    if ctx.operation.retry_number == 0:
        raise RecoverableError("not ready yet", retry_after=0)


@hookimpl
def establish(ctx):
    ctx.logger.info("%s is next to %s", ctx.source.instance.id, ctx.target.instance.id)


@hookimpl
def delete(ctx):
    Path(ctx.instance.runtime_properties["path"]).unlink(missing_ok=True)
'''

BROKEN_IMPORT = '''
raise RuntimeError("boom at import")
'''

MISSPELLED = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"olt.Misspelled": {"derived_from": "orchestrator.nodes.Root"}}}


@hookimpl
def creat(ctx):
    pass
'''

TYPES_RAISE = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    raise ValueError("no types today")
'''

WRONG_ARGUMENT = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"olt.WrongArgument": {"derived_from": "orchestrator.nodes.Root"}}}


@hookimpl
def create(context):
    pass
'''

SHARED_TYPE = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"olt.Shared": {"derived_from": "orchestrator.nodes.Root"}}}
'''

# entry point name -> (distribution, module, source)
PLUGINS = {
    "olt_healthy": ("olt-healthy", "olt_healthy", HEALTHY),
    "olt_broken_import": ("olt-broken-import", "olt_broken_import", BROKEN_IMPORT),
    "olt_misspelled": ("olt-misspelled", "olt_misspelled", MISSPELLED),
    "olt_types_raise": ("olt-types-raise", "olt_types_raise", TYPES_RAISE),
    "olt_wrong_argument": ("olt-wrong-argument", "olt_wrong_argument", WRONG_ARGUMENT),
    "olt_dup_a": ("olt-dup-a", "olt_dup_a", SHARED_TYPE),
    "olt_dup_b": ("olt-dup-b", "olt_dup_b", SHARED_TYPE),
}

# entry point name -> what its load error must say
EXPECTED_ERRORS = {
    "olt_broken_import": "failed to import 'olt_broken_import': RuntimeError: boom at import",
    "olt_misspelled": "hookimpl 'creat' (olt_misspelled.creat) matches no hook (did you mean 'create'?)",
    "olt_types_raise": "register_types failed: ValueError: no types today",
    # issue 18: ours, not pluggy's three lines
    "olt_wrong_argument": "hookimpl 'create' (olt_wrong_argument.create) takes 'context', which the hook does "
                          "not pass; its arguments are: ctx (take only those you need, by name)",
    "olt_dup_b": "type 'olt.Shared' is registered by two plugins: 'olt_dup_a' and 'olt_dup_b'",
}

BROKEN = ("olt_broken_import", "olt_misspelled", "olt_types_raise", "olt_wrong_argument", "olt_dup_a",
          "olt_dup_b")

# Which broken plugins are present while a healthy plugin's blueprint is installed.
BROKEN_SETS = [
    pytest.param(("olt_broken_import", "olt_misspelled", "olt_types_raise", "olt_wrong_argument"),
                 id="import-hookimpl-types"),
    pytest.param(("olt_dup_a", "olt_dup_b"), id="duplicate-type"),
]


def disable_all_but(present: tuple[str, ...]) -> dict[str, str]:
    return {"ORCHESTRATOR_DISABLE_PLUGINS": ",".join(n for n in BROKEN if n not in present)}


BLUEPRINT = '''
node_templates:
  first:
    type: olt.Marker
    properties: {{path: "{out}/first"}}
  second:
    type: olt.Marker
    properties: {{path: "{out}/second"}}
    relationships:
      - {{type: olt.next_to, target: first}}
'''


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A directory holding the six test distributions."""
    site = tmp_path / "site"
    site.mkdir()
    for name, (dist, module, source) in PLUGINS.items():
        write_distribution(site, dist, {name: module}, {f"{module}.py": source})
    return site


@pytest.fixture
def on_path(site: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The test distributions importable in this process; their modules forgotten after."""
    monkeypatch.syspath_prepend(str(site))  # also invalidates import caches
    yield site
    for module in [m for m in sys.modules if m.startswith("olt_")]:
        del sys.modules[module]


def cli(site: Path, *args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command line in a subprocess that finds the test distributions."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=120)


def error_lines(stderr: str) -> dict[str, str]:
    """``error: plugin 'NAME' (DIST VERSION): MESSAGE`` lines, by plugin name."""
    found = {}
    for line in stderr.splitlines():
        m = re.match(r"error: plugin '([^']+)' \(([^ ]+) ([^)]+)\): (.*)", line)
        if m:
            found[m[1]] = line
    return found


# ---------------------------------------------------------------- get_plugin_manager()


def test_every_broken_plugin_is_a_load_error_and_the_rest_load(on_path: Path) -> None:
    pm = get_plugin_manager(env={})

    errors = {e.plugin: e for e in pm.load_errors if e.plugin.startswith("olt_")}
    assert set(errors) == set(EXPECTED_ERRORS)
    for name, message in EXPECTED_ERRORS.items():
        error = errors[name]
        assert error.error == message
        assert error.fatal
        assert (error.distribution, error.version) == (PLUGINS[name][0], "1.0")
        assert str(error).startswith(f"plugin '{name}' ({PLUGINS[name][0]} 1.0): ")
    loaded = {info.name: info for info in pm.plugin_infos()}
    assert "olt_broken_import" not in loaded
    assert "olt_misspelled" not in loaded  # unregistered: a half-working plugin is worse
    assert "olt_types_raise" not in loaded
    assert loaded["olt_healthy"].types == ["olt.Marker", "olt.next_to"]
    assert loaded["olt_healthy"].distribution == "olt-healthy"
    assert pm.type_owner["olt.Shared"] == "olt_dup_a"  # the first one keeps the type
    assert "orchestrator.builtin" in loaded


@pytest.mark.parametrize("present", BROKEN_SETS)
def test_a_healthy_plugin_installs_next_to_broken_ones(on_path: Path, tmp_path: Path,
                                                       present: tuple[str, ...]) -> None:
    from orchestrator.deployments import Orchestrator

    pm = get_plugin_manager(env=disable_all_but(present))
    assert {e.plugin for e in pm.load_errors} >= set(present) & set(EXPECTED_ERRORS)
    blueprint = tmp_path / "bp.yaml"
    blueprint.write_text(BLUEPRINT.format(out=tmp_path))
    orch = Orchestrator(pm=pm, state_path=tmp_path / "state.db")
    try:
        result = orch.install(blueprint)
        assert result.ok, result.failures
        assert (tmp_path / "second").read_text() == "second_0"
    finally:
        orch.close()


def test_selection_by_environment(on_path: Path) -> None:
    only = get_plugin_manager(env={"ORCHESTRATOR_PLUGINS": "olt_healthy, olt_dup_b"})
    assert {n for n, _ in only.list_name_plugin()} == {"orchestrator.builtin", "olt_healthy", "olt_dup_b"}
    assert only.load_errors == []  # the broken ones were never imported
    assert only.type_owner["olt.Shared"] == "olt_dup_b"

    without = get_plugin_manager(env={"ORCHESTRATOR_DISABLE_PLUGINS": "olt_broken_import,olt_dup_a"})
    names = {n for n, _ in without.list_name_plugin()}
    assert "olt_healthy" in names and "olt_dup_b" in names
    assert not {"olt_broken_import", "olt_dup_a"} & names
    assert {e.plugin for e in without.load_errors if e.plugin.startswith("olt_")} == {
        "olt_misspelled", "olt_types_raise", "olt_wrong_argument"}

    both = get_plugin_manager(env={"ORCHESTRATOR_PLUGINS": "olt_healthy,olt_misspelled",
                                   "ORCHESTRATOR_DISABLE_PLUGINS": "olt_misspelled"})
    assert {n for n, _ in both.list_name_plugin()} == {"orchestrator.builtin", "olt_healthy"}
    assert "olt_broken_import" not in sys.modules


def test_the_same_name_is_loaded_once(on_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = tmp_path / "other"
    other.mkdir()
    write_distribution(other, "olt-impostor", {"olt_healthy": "olt_impostor"},
                       {"olt_impostor.py": SHARED_TYPE.replace("Shared", "Impostor")}, version="2.0")
    monkeypatch.syspath_prepend(str(other))
    pm = get_plugin_manager(env={"ORCHESTRATOR_PLUGINS": "olt_healthy"})
    assert len([n for n, _ in pm.list_name_plugin() if n == "olt_healthy"]) == 1
    assert not [e for e in pm.load_errors if e.fatal]  # the other one is ignored, not an error


# ---------------------------------------------------------------- the command line


def test_plugins_list_reports_every_load_error(site: Path, tmp_path: Path) -> None:
    proc = cli(site, "plugins", "list", cwd=tmp_path)
    assert proc.returncode == 1, proc.stderr  # some plugin failed to load; the good ones are still listed
    errors = error_lines(proc.stderr)
    for name, message in EXPECTED_ERRORS.items():
        assert errors[name] == f"error: plugin '{name}' ({PLUGINS[name][0]} 1.0): {message}"
    assert "olt_healthy  [olt-healthy 1.0]  module olt_healthy" in proc.stdout
    assert "types:    olt.Marker, olt.next_to" in proc.stdout
    assert "Traceback" not in proc.stderr

    as_json = cli(site, "plugins", "list", "--json", cwd=tmp_path)
    assert as_json.returncode == 1
    data = json.loads(as_json.stdout)
    by_plugin = {e["plugin"]: e for e in data["errors"]}
    for name, message in EXPECTED_ERRORS.items():
        assert by_plugin[name] == {"plugin": name, "distribution": PLUGINS[name][0], "version": "1.0",
                                   "error": message, "fatal": True}
    healthy = next(p for p in data["plugins"] if p["name"] == "olt_healthy")
    assert healthy["hooks"] == ["configure", "create", "delete", "establish", "register_types"]


def test_plugins_list_warns_of_an_entry_point_in_a_near_miss_group(site: Path, tmp_path: Path) -> None:
    """Issue 18: ``orchestrator.plugin`` (no s) was silently ignored."""
    write_distribution(site, "olt-near-miss", {"olt_near": "olt_healthy"}, {}, group="orchestrator.plugin")
    write_distribution(site, "olt-unrelated", {"olt_other": "olt_healthy"}, {}, group="console_scripts")
    proc = cli(site, "plugins", "list", cwd=tmp_path, ORCHESTRATOR_PLUGINS="olt_healthy")
    assert proc.returncode == 0, proc.stderr  # a warning, not a load error
    assert ("warning: plugin 'olt_near' (olt-near-miss 1.0): entry point 'olt_near = olt_healthy' is in group "
            "'orchestrator.plugin', not 'orchestrator.plugins', so it is ignored (fix the group name in the "
            "distribution's pyproject.toml)") in proc.stderr.splitlines()
    assert "olt_other" not in proc.stderr


@pytest.mark.parametrize("present", BROKEN_SETS)
def test_install_prints_load_errors_and_still_succeeds(site: Path, tmp_path: Path,
                                                       present: tuple[str, ...]) -> None:
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(out=tmp_path))
    state = str(tmp_path / "state.db")

    proc = cli(site, "install", "bp.yaml", "--state", state, cwd=tmp_path, **disable_all_but(present))

    assert proc.returncode == 0, proc.stdout + proc.stderr
    errors = error_lines(proc.stderr)
    for name in set(present) & set(EXPECTED_ERRORS):
        assert errors[name] == f"error: plugin '{name}' ({PLUGINS[name][0]} 1.0): {EXPECTED_ERRORS[name]}"
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "first").read_text() == "first_0"
    assert (tmp_path / "second").read_text() == "second_0"

    proc = cli(site, "uninstall", "--state", state, cwd=tmp_path, **disable_all_but(present))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert not (tmp_path / "first").exists()


def test_a_blueprint_needing_a_broken_plugin_is_refused(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text("node_templates:\n  x: {type: olt.Misspelled}\n")

    proc = cli(site, "install", "bp.yaml", "--state", str(tmp_path / "state.db"), cwd=tmp_path)

    assert proc.returncode == 2
    assert "olt.Misspelled" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_selection_on_the_command_line(site: Path, tmp_path: Path) -> None:
    only = json.loads(cli(site, "plugins", "list", "--json", cwd=tmp_path,
                          ORCHESTRATOR_PLUGINS="olt_healthy").stdout)
    assert [p["name"] for p in only["plugins"]] == ["orchestrator.builtin", "olt_healthy"]
    assert only["errors"] == []

    without = cli(site, "plugins", "list", cwd=tmp_path,
                  ORCHESTRATOR_DISABLE_PLUGINS="olt_broken_import,olt_misspelled,olt_types_raise,olt_dup_b,"
                                               "olt_wrong_argument")
    assert without.returncode == 0
    assert not [name for name in error_lines(without.stderr) if name.startswith("olt_")]
    assert "olt_healthy  [olt-healthy 1.0]" in without.stdout


def test_trace_hooks_prints_every_hook_call(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text(BLUEPRINT.format(out=tmp_path))

    proc = cli(site, "install", "bp.yaml", "--json", "--state", str(tmp_path / "state.db"), cwd=tmp_path,
               ORCHESTRATOR_TRACE_HOOKS="1", ORCHESTRATOR_PLUGINS="olt_healthy")

    assert proc.returncode == 0, proc.stderr
    trace = re.compile(r"\[trace\] (\w+) plugins=(\S+) (\S+) (\d+\.\d+)ms (ok|error (\w+): .*)$")
    calls = [trace.match(line) for line in proc.stderr.splitlines() if line.startswith("[trace]")]
    assert all(calls), proc.stderr
    seen = [(m[1], m[3], "ok" if m[5] == "ok" else m[6]) for m in calls]
    assert {m[2] for m in calls} == {"olt_healthy"}
    # Exactly the operations the engine reports as started, in the same order per instance.
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    started = [(e["operation"], e["instance"]) for e in events if e["type"] == "operation_started"]
    assert sorted((hook, inst.split("->")[0]) for hook, inst, _ in seen) == sorted(started)
    assert [s for s in seen if s[1] == "first_0"] == [
        ("create", "first_0", "ok"), ("configure", "first_0", "RecoverableError"),
        ("configure", "first_0", "ok")]
    assert ("establish", "second_0->first_0", "ok") in seen
    assert "[trace]" not in cli(site, "plugins", "list", cwd=tmp_path).stderr  # off by default
