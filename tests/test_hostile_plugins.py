"""Hostile or broken plugins are load errors naming them; every other command still works.

A plugin may raise any ``BaseException`` (``SystemExit``, ``KeyboardInterrupt``,
``GeneratorExit``, its own subclass) at import or in ``register_types``, hang in
``register_types``, or register types that cannot be resolved. Each is reported as
``error: plugin 'NAME' (DIST VERSION): ...`` and skipped; ``plugins list`` exits 1.

Each plugin is a real distribution found through its entry point, run by the real CLI
in a subprocess (see test_plugin_loading for how the distributions are made).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testenv.dists import write_distribution

from orchestrator.plugins import get_plugin_manager, plugin_timeout

pytestmark = pytest.mark.integration

GOOD = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {
        "node_types": {"hp.Good": {"derived_from": "orchestrator.nodes.Root",
                                   "properties": {"endpoint": {"type": "hp.datatypes.Endpoint", "required": False}}}},
        "data_types": {"hp.datatypes.Endpoint": {"properties": {"host": {"type": "string"},
                                                                "port": {"type": "integer", "default": 80}}}},
    }


@hookimpl
def create(ctx):
    ctx.instance.runtime_properties["made"] = True
'''

# Uses a data type another plugin registers: legitimate, must load.
BORROWER = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"hp.Borrower": {"derived_from": "hp.Good",
                                           "properties": {"backup": {"type": "hp.datatypes.Endpoint",
                                                                     "required": False}}}}}
'''


def raising(where: str, exc: str) -> str:
    prelude = "class Custom(BaseException):\n    pass\n\n\n"
    if where == "import":
        return f"{prelude}raise {exc}\n"
    return (f"{prelude}from orchestrator import hookimpl\n\n\n@hookimpl\ndef register_types():\n"
            f"    raise {exc}\n")


HANGS = '''
import time

from orchestrator import hookimpl


@hookimpl
def register_types():
    time.sleep(3600)
'''


def types_plugin(types: str) -> str:
    return f"from orchestrator import hookimpl\n\n\n@hookimpl\ndef register_types():\n    return {types}\n"


INT_PROPERTY = types_plugin(
    '{"node_types": {"hp.Counter": {"derived_from": "orchestrator.nodes.Root", '
    '"properties": {"count": {"type": "int"}}}}}')
UNKNOWN_PARENT = types_plugin('{"node_types": {"hp.Orphan": {"derived_from": "orchestrator.nodes.Rot"}}}')
BAD_SCHEMA = types_plugin(
    '{"node_types": {"hp.Sloppy": {"derived_from": "orchestrator.nodes.Root", '
    '"properties": {"size": {"type": "integer", "requird": True}}}}}')
CHILD_OF_BROKEN = types_plugin('{"node_types": {"hp.Child": {"derived_from": "hp.Counter"}}}')
YAML_TEXT = types_plugin(
    '"""\\nnode_types:\\n  hp.Texty:\\n    derived_from: orchestrator.nodes.Root\\n'
    '    properties:\\n      when: {type: datetime}\\n"""')
NOT_A_MAPPING = types_plugin('["hp.Listed"]')
SECTION_NOT_A_MAPPING = types_plugin('{"node_types": ["hp.Listed"]}')
UNKNOWN_SECTION = types_plugin('{"node_type": {"hp.Typo": {"derived_from": "orchestrator.nodes.Root"}}}')

# A type-less plugin implementing a lifecycle hook: a warning, not an error.
WARNS = "from orchestrator import hookimpl\n\n\n@hookimpl\ndef create(ctx):\n    pass\n"

NOISY = """import os, subprocess, sys
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"hp.Noisy": {"derived_from": "orchestrator.nodes.Root",
                                        "properties": {"password": {"type": "string"}}}}}


@hookimpl
def create(ctx):
    print("debug: creating", ctx.instance.id)
    print("the password is", ctx.node.properties["password"])
    print("careful", file=sys.stderr)
    os.write(1, b"written to the file descriptor\\n")
    subprocess.run([sys.executable, "-c", "print('from a child process')"], check=True)
    sys.stdout.write("no newline at the end")
"""

ESCAPES = """from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"hp.Escapes": {"derived_from": "orchestrator.nodes.Root"}}}


@hookimpl
def create(ctx):
    ctx.logger.info("title \\x1b]0;pwned\\x07 clear \\x1b[2J\\x1b[H bell \\x07 over \\rinstall succeeded")
    raise RuntimeError("bad \\x1b[2J\\x9b31mthing")
"""

# entry point -> (distribution, source)
PLUGINS = {
    "hp_good": ("hp-good", GOOD),
    "hp_borrower": ("hp-borrower", BORROWER),
    "hp_types_exit": ("hp-types-exit", raising("types", "SystemExit(4)")),
    "hp_types_interrupt": ("hp-types-interrupt", raising("types", "KeyboardInterrupt('plugin says stop')")),
    "hp_types_genexit": ("hp-types-genexit", raising("types", "GeneratorExit()")),
    "hp_types_custom": ("hp-types-custom", raising("types", "Custom('not an Exception')")),
    "hp_import_exit": ("hp-import-exit", raising("import", "SystemExit(3)")),
    "hp_import_interrupt": ("hp-import-interrupt", raising("import", "KeyboardInterrupt()")),
    "hp_import_custom": ("hp-import-custom", raising("import", "Custom('at import')")),
    "hp_hangs": ("hp-hangs", HANGS),
    "hp_int_property": ("hp-int-property", INT_PROPERTY),
    "hp_unknown_parent": ("hp-unknown-parent", UNKNOWN_PARENT),
    "hp_bad_schema": ("hp-bad-schema", BAD_SCHEMA),
    "hp_child_of_broken": ("hp-child-of-broken", CHILD_OF_BROKEN),
    "hp_yaml_text": ("hp-yaml-text", YAML_TEXT),
    "hp_not_a_mapping": ("hp-not-a-mapping", NOT_A_MAPPING),
    "hp_section_not_a_mapping": ("hp-section-not-a-mapping", SECTION_NOT_A_MAPPING),
    "hp_unknown_section": ("hp-unknown-section", UNKNOWN_SECTION),
    "hp_warns": ("hp-warns", WARNS),
    "hp_noisy": ("hp-noisy", NOISY),
    "hp_escapes": ("hp-escapes", ESCAPES),
}

BLUEPRINT = "node_templates:\n  g: {type: hp.Good, properties: {endpoint: {host: example.org}}}\n  b: {type: hp.Borrower}\n"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    site = tmp_path_factory.mktemp("site")
    for name, (dist, source) in PLUGINS.items():
        write_distribution(site, dist, {name: name}, {f"{name}.py": source}, version="2.1")
    return site


def cli(site: Path, *args: str, cwd: Path, plugins: str, timeout: float = 60,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")]))
    environ["ORCHESTRATOR_PLUGINS"] = plugins
    environ.update(env)
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], capture_output=True, text=True,
                          cwd=cwd, env=environ, timeout=timeout)


def error_line(name: str, message: str) -> str:
    return f"error: plugin '{name}' ({PLUGINS[name][0]} 2.1): {message}"


def assert_still_works(site: Path, tmp_path: Path, bad: str, message: str, **env: str) -> None:
    """``plugins list`` exits 1 naming the bad plugin; a blueprint of the good ones validates and installs."""
    plugins = f"hp_good,hp_borrower,{bad}"
    listed = cli(site, "plugins", "list", cwd=tmp_path, plugins=plugins, **env)
    assert listed.returncode == 1, listed.stdout + listed.stderr
    assert error_line(bad, message) in listed.stderr.splitlines(), listed.stderr
    assert "hp_good  [hp-good 2.1]" in listed.stdout and "hp_borrower  [hp-borrower 2.1]" in listed.stdout
    assert "Traceback" not in listed.stderr

    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    validated = cli(site, "validate", "bp.yaml", cwd=tmp_path, plugins=plugins, **env)
    assert validated.returncode == 0, validated.stderr
    assert error_line(bad, message) in validated.stderr.splitlines()
    installed = cli(site, "install", "bp.yaml", "--state", str(tmp_path / "state.db"), cwd=tmp_path,
                    plugins=plugins, **env)
    assert installed.returncode == 0, installed.stdout + installed.stderr
    assert "Traceback" not in validated.stderr + installed.stderr


@pytest.mark.parametrize(("bad", "message"), [
    ("hp_types_exit", "register_types failed: SystemExit: 4"),
    ("hp_types_interrupt", "register_types failed: KeyboardInterrupt: plugin says stop"),
    ("hp_types_genexit", "register_types failed: GeneratorExit"),
    ("hp_types_custom", "register_types failed: Custom: not an Exception"),
    ("hp_import_exit", "failed to import 'hp_import_exit': SystemExit: 3"),
    ("hp_import_interrupt", "failed to import 'hp_import_interrupt': KeyboardInterrupt"),
    ("hp_import_custom", "failed to import 'hp_import_custom': Custom: at import"),
])
def test_a_plugin_raising_any_base_exception_is_a_load_error(site: Path, tmp_path: Path, bad: str,
                                                             message: str) -> None:
    assert_still_works(site, tmp_path, bad, message)


def test_a_hanging_register_types_is_abandoned_after_the_timeout(site: Path, tmp_path: Path) -> None:
    started = time.monotonic()
    assert_still_works(site, tmp_path, "hp_hangs", "register_types did not return within 0.5s; skipped",
                       ORCHESTRATOR_PLUGIN_TIMEOUT="0.5")
    assert time.monotonic() - started < 30  # three commands, none waits for the plugin


def test_the_plugin_timeout_setting() -> None:
    assert plugin_timeout({}) == 10.0
    assert plugin_timeout({"ORCHESTRATOR_PLUGIN_TIMEOUT": "2.5"}) == 2.5
    assert plugin_timeout({"ORCHESTRATOR_PLUGIN_TIMEOUT": "soon"}) == 10.0
    assert plugin_timeout({"ORCHESTRATOR_PLUGIN_TIMEOUT": "0"}) == 10.0


@pytest.mark.parametrize(("bad", "message"), [
    ("hp_int_property", "invalid types: node type 'hp.Counter': property 'count' has unknown type 'int' "
                        "(did you mean 'integer'?)"),
    ("hp_unknown_parent", "invalid types: node type 'hp.Orphan' derives from unknown node type "
                          "'orchestrator.nodes.Rot' (did you mean 'orchestrator.nodes.Root'?)"),
    ("hp_bad_schema", "invalid types: unknown key 'requird' in property 'size' of node type 'hp.Sloppy' "
                      "(did you mean 'required'?)"),
    ("hp_yaml_text", "invalid types: <plugin hp_yaml_text>:6:20: node type 'hp.Texty': property 'when' "
                     "has unknown type 'datetime'"),
    ("hp_not_a_mapping", "register_types must return a mapping or YAML text, got list"),
    ("hp_section_not_a_mapping", "register_types: 'node_types' must be a mapping of type name to definition, "
                                 "got list"),
    ("hp_unknown_section", "invalid types: register_types returned an unknown section 'node_type' "
                           "(did you mean 'node_types'?)"),
])
def test_a_plugin_with_invalid_types_is_a_load_error_of_that_plugin(site: Path, tmp_path: Path, bad: str,
                                                                    message: str) -> None:
    assert_still_works(site, tmp_path, bad, message)


def test_a_plugin_building_on_a_broken_one_is_skipped_too(site: Path, tmp_path: Path) -> None:
    proc = cli(site, "plugins", "list", "--json", cwd=tmp_path,
               plugins="hp_good,hp_borrower,hp_int_property,hp_child_of_broken")
    assert proc.returncode == 1
    data = json.loads(proc.stdout)
    errors = {e["plugin"]: e for e in data["errors"]}
    assert set(errors) == {"hp_int_property", "hp_child_of_broken"}
    assert errors["hp_child_of_broken"] == {
        "plugin": "hp_child_of_broken", "distribution": "hp-child-of-broken", "version": "2.1", "fatal": True,
        "error": "invalid types: node type 'hp.Child' derives from unknown node type 'hp.Counter' "
                 "(type 'hp.Counter' was registered by plugin 'hp_int_property', which failed to load)"}
    loaded = {p["name"]: p for p in data["plugins"]}
    assert set(loaded) == {"orchestrator.builtin", "hp_good", "hp_borrower"}
    assert loaded["hp_good"]["types"] == ["hp.Good", "hp.datatypes.Endpoint"]


def test_plugins_list_exits_0_with_warnings_only(site: Path, tmp_path: Path) -> None:
    proc = cli(site, "plugins", "list", cwd=tmp_path, plugins="hp_good,hp_warns")
    assert proc.returncode == 0, proc.stderr
    assert "warning: plugin 'hp_warns' (hp-warns 2.1): implements 'create'" in proc.stderr


def test_in_process_load_errors_name_plugin_distribution_and_version(site: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(site))
    try:
        pm = get_plugin_manager(env={"ORCHESTRATOR_PLUGINS": "hp_good,hp_types_exit,hp_int_property"})
    finally:
        for module in [m for m in sys.modules if m.startswith("hp_")]:
            del sys.modules[module]
    errors = {e.plugin: e for e in pm.load_errors}
    assert set(errors) == {"hp_types_exit", "hp_int_property"}
    assert (errors["hp_types_exit"].distribution, errors["hp_types_exit"].version) == ("hp-types-exit", "2.1")
    assert all(e.fatal for e in errors.values())
    assert "hp.Counter" not in pm.type_owner and not pm.has_plugin("hp_int_property")
    assert pm.type_owner["hp.Good"] == "hp_good"


def test_what_a_hook_prints_becomes_its_log_lines_and_json_output_stays_json(site: Path, tmp_path: Path) -> None:
    (tmp_path / "bp.yaml").write_text("node_templates:\n  t: {type: hp.Noisy, properties: {password: {get_secret: pw}}}\n")
    run = cli(site, "install", "bp.yaml", "--json", cwd=tmp_path, plugins="hp_noisy", ORCHESTRATOR_SECRET_PW="s3cret-pw")
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in run.stdout.splitlines()]  # every line of stdout is JSON
    logs = [(e["instance"], e["operation"], e["level"], e["message"]) for e in events if e["type"] == "log"]
    assert logs == [("t_0", "create", "info", "debug: creating t_0"), ("t_0", "create", "info", "the password is ******"),
                    ("t_0", "create", "warning", "careful"), ("t_0", "create", "info", "no newline at the end")]
    # A process the hook started writes to the file descriptor itself: it goes to stderr, never into the JSON.
    assert "written to the file descriptor" in run.stderr and "from a child process" in run.stderr
    assert "s3cret-pw" not in run.stdout + run.stderr
    again = cli(site, "uninstall", cwd=tmp_path, plugins="hp_noisy")
    assert again.returncode == 0, again.stderr
    plain = cli(site, "install", "bp.yaml", cwd=tmp_path, plugins="hp_noisy", ORCHESTRATOR_SECRET_PW="s3cret-pw")
    assert "t_0.create INFO the password is ******" in plain.stdout and "s3cret-pw" not in plain.stdout


def test_escape_sequences_from_a_plugin_reach_no_terminal(site: Path, tmp_path: Path) -> None:
    # A log line or an error may clear the screen, set the title or write over a line: shown, never acted on.
    (tmp_path / "bp.yaml").write_text("node_templates:\n  t: {type: hp.Escapes}\n")
    shown = [cli(site, *args, cwd=tmp_path, plugins="hp_escapes")
             for args in (("install", "bp.yaml", "--retries", "0"), ("status",), ("events",))]
    assert [run.returncode for run in shown] == [1, 0, 0]
    for run in shown:
        text = run.stdout + run.stderr
        assert not any(c in text for c in "\x1b\x07\r\x9b"), repr(text)
    assert "title \\x1b]0;pwned\\x07 clear \\x1b[2J\\x1b[H bell \\x07 over \\rinstall succeeded" in shown[0].stdout
    assert "create (hp_escapes) failed: RuntimeError: bad \\x1b[2J\\x9b31mthing" in shown[1].stdout
    as_json = cli(site, "events", "--json", cwd=tmp_path, plugins="hp_escapes")
    messages = [json.loads(line)["message"] for line in as_json.stdout.splitlines()]
    assert "title \x1b]0;pwned\x07 clear \x1b[2J\x1b[H bell \x07 over \rinstall succeeded" in messages, "data kept as it is"
