"""Plugins known from the index are imported only when something needs more than their types.

Each check runs the real command line in fresh processes sharing one ``XDG_CACHE_HOME``,
with a test distribution written into a directory on ``PYTHONPATH``: the first command
imports the plugin and remembers what it declared; the next ones plan from that, and
import it for a hook (``validate_node``, ``create``) or when its code changed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from testenv.cli import cli_and_modules
from testenv.dists import write_distribution

from orchestrator.plugins import get_plugin_manager

PLUGIN = '''
from pathlib import Path

from orchestrator import hookimpl

TYPES = {"node_types": {"%(type)s": {"derived_from": "orchestrator.nodes.Root",
                                      "properties": {"size": {"type": "integer", "default": 1}}}}}


@hookimpl
def register_types():
    return TYPES


@hookimpl
def validate_node(node):
    if node.properties["size"] > 10:
        return [("size", "at most 10")]


@hookimpl
def create(ctx):
    Path(ctx.node.properties.get("marker", "created-" + ctx.instance.id)).write_text("made")
'''

ROOT_ONLY = "node_templates:\n  one: {type: orchestrator.nodes.Root}\n"


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """The command line in a fresh process, in ``work``, with ``site`` on the path."""
    site = os.pathsep.join(filter(None, [str(tmp_path / "site"), os.environ.get("PYTHONPATH")]))
    return cli_and_modules(*args, cwd=tmp_path / "work", env={"XDG_CACHE_HOME": str(tmp_path / "cache"),
                                                              "PYTHONPATH": site})


def _setup(tmp_path: Path, plugin_type: str = "lz.Thing") -> None:
    write_distribution(tmp_path / "site", "lz-plugin", {"lz": "lz_plugin"},
                       {"lz_plugin.py": PLUGIN % {"type": plugin_type}})
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "root.yaml").write_text(ROOT_ONLY)


def test_planning_without_its_types_does_not_import_a_known_plugin(tmp_path: Path) -> None:
    _setup(tmp_path)
    first, cold = _run(tmp_path, "plan", "root.yaml")
    assert first.returncode == 0, first.stderr
    assert "lz_plugin" in cold  # not known yet: imported, and remembered
    again, warm = _run(tmp_path, "plan", "root.yaml")
    assert again.returncode == 0, again.stderr
    assert "lz_plugin" not in warm
    assert again.stdout.split("\n[")[0] == first.stdout.split("\n[")[0]


def test_a_known_plugin_still_checks_and_runs_its_types(tmp_path: Path) -> None:
    _setup(tmp_path)
    _run(tmp_path, "plan", "root.yaml")
    work = tmp_path / "work"
    (work / "big.yaml").write_text("node_templates:\n  thing:\n    type: lz.Thing\n    properties: {size: 11}\n")
    refused, modules = _run(tmp_path, "plan", "big.yaml")
    assert refused.returncode == 2
    assert "big.yaml:4:" in refused.stderr and "size" in refused.stderr and "at most 10" in refused.stderr
    assert "lz_plugin" in modules  # validate_node of its type: imported for it

    (work / "ok.yaml").write_text("node_templates:\n  thing:\n    type: lz.Thing\n")
    planned, _ = _run(tmp_path, "plan", "ok.yaml")
    assert "create" in planned.stdout  # the operations it implements, known without importing it
    installed, _ = _run(tmp_path, "install", "ok.yaml", "--state", "state.db")
    assert installed.returncode == 0, installed.stderr
    assert (work / "created-thing_0").read_text() == "made"


def test_an_edited_plugin_is_read_again(tmp_path: Path) -> None:
    _setup(tmp_path)
    _run(tmp_path, "plan", "root.yaml")
    _run(tmp_path, "plan", "root.yaml")
    time.sleep(0.01)  # a distinct modification time even on coarse clocks
    (tmp_path / "site" / "lz_plugin.py").write_text(PLUGIN % {"type": "lz.Renamed"})
    (tmp_path / "work" / "renamed.yaml").write_text("node_templates:\n  thing:\n    type: lz.Renamed\n")
    done, modules = _run(tmp_path, "plan", "renamed.yaml")
    assert done.returncode == 0, done.stderr
    assert "lz_plugin" in modules
    gone, _ = _run(tmp_path, "plan", "renamed.yaml")  # and remembered as it is now
    assert gone.returncode == 0, gone.stderr


def test_warnings_are_repeated_and_a_broken_plugin_is_never_remembered(tmp_path: Path) -> None:
    site = tmp_path / "site"
    write_distribution(site, "lz-typeless", {"lz_typeless": "lz_typeless"},
                       {"lz_typeless.py": "from orchestrator import hookimpl\n\n\n@hookimpl\ndef create(ctx):\n"
                                          "    pass\n"})
    write_distribution(site, "lz-broken", {"lz_broken": "lz_broken"},
                       {"lz_broken.py": "raise RuntimeError('boom at import')\n"})
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "root.yaml").write_text(ROOT_ONLY)
    for _ in range(3):
        done, _ = _run(tmp_path, "plan", "root.yaml")
        assert done.returncode == 0, done.stderr
        assert "warning: plugin 'lz_typeless'" in done.stderr and "registers no types" in done.stderr
        assert "error: plugin 'lz_broken'" in done.stderr and "boom at import" in done.stderr


def test_plugins_list_shows_a_known_plugins_hooks(tmp_path: Path) -> None:
    _setup(tmp_path)
    _run(tmp_path, "plan", "root.yaml")
    done, _ = _run(tmp_path, "plugins", "list", "--json")
    assert done.returncode == 0, done.stderr
    listing = json.loads(done.stdout.rsplit("\n[", 1)[0])
    (lz,) = [p for p in listing["plugins"] if p["name"] == "lz"]
    assert {"create", "validate_node", "register_types"} <= set(lz["hooks"])
    assert lz["types"] == ["lz.Thing"]


SLOW = '''
import time

from orchestrator import hookimpl

time.sleep(0.3)  # a slow import: other threads ask for hooks meanwhile


@hookimpl
def register_types():
    return {"node_types": {"lz.Slow": {"derived_from": "orchestrator.nodes.Root"}}}


@hookimpl
def create(ctx):
    pass
'''


def test_threads_asking_for_hooks_at_once_all_wait_for_the_pending_plugins(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    write_distribution(site, "lz-slow", {"lz_slow": "lz_slow"}, {"lz_slow.py": SLOW})
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for name in ("ORCHESTRATOR_PLUGINS", "ORCHESTRATOR_DISABLE_PLUGINS", "ORCHESTRATOR_PLUGIN_CACHE"):
        monkeypatch.delenv(name, raising=False)
    get_plugin_manager()  # imports it and remembers what it declared
    monkeypatch.delitem(sys.modules, "lz_slow")
    pm = get_plugin_manager()
    assert pm.has_plugin("lz_slow") and pm.type_owner["lz.Slow"] == "lz_slow"
    assert "lz_slow" not in sys.modules  # known from the index, not imported

    seen: list[int] = []

    def ask() -> None:
        impls = pm.hook.create.get_hookimpls()
        seen.append(sum(pm.get_name(i.plugin) == "lz_slow" for i in impls))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == [1, 1, 1, 1]


def test_an_entry_point_name_two_distributions_use_is_reported_once_every_time(tmp_path: Path) -> None:
    _setup(tmp_path)
    write_distribution(tmp_path / "site", "lz-again", {"lz": "lz_again"},
                       {"lz_again.py": PLUGIN % {"type": "lz.Again"}})
    for _ in range(3):
        done, _ = _run(tmp_path, "plan", "root.yaml")
        assert done.returncode == 0, done.stderr
        assert done.stderr.count("entry point name 'lz' is already used") == 1, done.stderr


def test_a_known_plugin_that_fails_to_import_later_says_why_and_runs_nothing(tmp_path: Path) -> None:
    write_distribution(tmp_path / "site", "lz-plugin", {"lz": "lz_plugin"},
                       {"lz_plugin.py": "import os\nif os.environ.get('LZ_BREAK'):\n"
                                        "    raise RuntimeError('broken since')\n" + PLUGIN % {"type": "lz.Thing"}})
    work = tmp_path / "work"
    work.mkdir()
    (work / "ok.yaml").write_text("node_templates:\n  thing:\n    type: lz.Thing\n")
    assert _run(tmp_path, "plan", "ok.yaml")[0].returncode == 0  # remembered, clean
    os.environ["LZ_BREAK"] = "1"
    try:
        done, _ = _run(tmp_path, "install", "ok.yaml", "--state", "state.db")
    finally:
        del os.environ["LZ_BREAK"]
    assert done.returncode != 0
    assert "broken since" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr
    assert not (work / "created-thing_0").exists()


def test_a_plugin_object_is_remembered_like_a_module(tmp_path: Path) -> None:
    source = ("from orchestrator import hookimpl\n\n\nclass Things:\n    @hookimpl\n    def register_types(self):\n"
              "        return {'node_types': {'lz.Obj': {'derived_from': 'orchestrator.nodes.Root'}}}\n\n\n"
              "plugin = Things()\n")
    write_distribution(tmp_path / "site", "lz-obj", {"lz_obj": "lz_obj_pkg.mod:plugin"},
                       {"lz_obj_pkg/__init__.py": "", "lz_obj_pkg/mod.py": source})
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "root.yaml").write_text(ROOT_ONLY)
    assert "lz_obj_pkg.mod" in _run(tmp_path, "plan", "root.yaml")[1]
    done, warm = _run(tmp_path, "plan", "root.yaml")
    assert done.returncode == 0, done.stderr
    assert "lz_obj_pkg.mod" not in warm and "lz_obj_pkg" not in warm
