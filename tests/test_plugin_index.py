"""The entry-point index: remembered between commands, and never stale after an install.

Each check runs the real command line in a fresh process (its own ``XDG_CACHE_HOME``),
with test distributions written on the fly into a directory on ``PYTHONPATH``, exactly
where an installed plugin's ``*.dist-info`` folder would be.
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

from orchestrator.plugin_index import Found, _cache_file, plugin_entry_points, scan

PLUGIN = '''
from orchestrator import hookimpl


@hookimpl
def register_types():
    return {"node_types": {"%(type)s": {"derived_from": "orchestrator.nodes.Root"}}}
'''


def _plugins(tmp_path: Path, cache: Path, site: Path, **env: str) -> dict:
    """``orchestrator plugins list --json`` as a user runs it, plus which modules it imported."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    environ.update(PYTHONPATH=os.pathsep.join(filter(None, [str(site), environ.get("PYTHONPATH")])),
                   XDG_CACHE_HOME=str(cache), **env)
    code = ("import sys, json\nfrom orchestrator.cli import cli\n"
            "try:\n    cli(['plugins', 'list', '--json'], standalone_mode=False)\n"
            "finally:\n    print(json.dumps({'metadata': 'importlib.metadata' in sys.modules}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=environ,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    listing, _, tail = done.stdout.rpartition("\n{")
    return {**json.loads(listing), **json.loads("{" + tail)}


def _names(result: dict) -> set[str]:
    return {p["name"] for p in result["plugins"]}


def test_the_second_command_reads_the_index_and_an_install_is_seen_at_once(tmp_path: Path) -> None:
    cache, site = tmp_path / "cache", tmp_path / "site"
    write_distribution(site, "pi-one", {"pi_one": "pi_one"}, {"pi_one.py": PLUGIN % {"type": "pi.One"}})

    first = _plugins(tmp_path, cache, site)
    assert "pi_one" in _names(first)
    files = list((cache / "orchestrator").glob("entry-points-*.json"))
    assert len(files) == 1
    second = _plugins(tmp_path, cache, site)
    assert _names(second) == _names(first)
    # plugins list reads importlib.metadata itself (near-miss groups); discovery alone does not:
    no_scan = subprocess.run(
        [sys.executable, "-c", "import sys; from orchestrator.plugins import get_plugin_manager as g; "
                               "pm = g(); print('importlib.metadata' in sys.modules, sorted(pm.type_owner))"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
        env={**os.environ, "XDG_CACHE_HOME": str(cache), "PYTHONPATH": str(site)})
    assert no_scan.returncode == 0, no_scan.stderr
    assert no_scan.stdout.startswith("False") and "pi.One" in no_scan.stdout

    # a new distribution appears in a directory on sys.path: found by the very next command
    write_distribution(site, "pi-two", {"pi_two": "pi_two"}, {"pi_two.py": PLUGIN % {"type": "pi.Two"}})
    assert {"pi_one", "pi_two"} <= _names(_plugins(tmp_path, cache, site))

    # removed again: gone at once
    for folder in site.glob("pi_two-*.dist-info"):
        for f in folder.iterdir():
            f.unlink()
        folder.rmdir()
    assert "pi_two" not in _names(_plugins(tmp_path, cache, site))


def test_an_entry_point_edited_in_place_is_seen(tmp_path: Path) -> None:
    cache, site = tmp_path / "cache", tmp_path / "site"
    write_distribution(site, "pi-edit", {"pi_first": "pi_edit"}, {"pi_edit.py": PLUGIN % {"type": "pi.Edit"}})
    assert "pi_first" in _names(_plugins(tmp_path, cache, site))
    info = next(site.glob("pi_edit-*.dist-info")) / "entry_points.txt"
    time.sleep(0.01)  # a distinct modification time even on coarse clocks
    info.write_text("[orchestrator.plugins]\npi_renamed = pi_edit\n")  # in place: the folder's mtime stays
    assert _names(_plugins(tmp_path, cache, site)) >= {"pi_renamed"}
    assert "pi_first" not in _names(_plugins(tmp_path, cache, site))


@pytest.mark.parametrize("content", ["{not json", '{"format": 1, "key": 3}', "[]", ""])
def test_a_damaged_index_is_read_again_from_the_distributions(tmp_path: Path, content: str) -> None:
    cache, site = tmp_path / "cache", tmp_path / "site"
    write_distribution(site, "pi-dmg", {"pi_dmg": "pi_dmg"}, {"pi_dmg.py": PLUGIN % {"type": "pi.Dmg"}})
    _plugins(tmp_path, cache, site)
    for file in (cache / "orchestrator").glob("entry-points-*.json"):
        file.write_text(content)
    assert "pi_dmg" in _names(_plugins(tmp_path, cache, site))


def test_an_unwritable_cache_only_costs_time(tmp_path: Path) -> None:
    cache, site = tmp_path / "cache", tmp_path / "site"
    cache.write_text("a file where the cache directory would go")
    write_distribution(site, "pi-ro", {"pi_ro": "pi_ro"}, {"pi_ro.py": PLUGIN % {"type": "pi.Ro"}})
    assert "pi_ro" in _names(_plugins(tmp_path, cache, site))


def test_the_index_can_be_turned_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    index = plugin_entry_points({"ORCHESTRATOR_PLUGIN_CACHE": "0"})
    assert index == scan()
    assert not (tmp_path / "cache").exists()


def test_a_write_drops_the_files_other_interpreters_left_a_month_ago(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "cache" / "orchestrator"
    folder.mkdir(parents=True)
    long_ago = time.time() - 31 * 24 * 3600
    for name in ("entry-points-0badc0de.json", ".entry-points-x.tmp", "entry-points-fresh.json", "notes.json"):
        (folder / name).write_text("{}")
        if name != "entry-points-fresh.json":
            os.utime(folder / name, (long_ago, long_ago))
    plugin_entry_points({})
    assert sorted(p.name for p in folder.iterdir() if p.name != _cache_file().name) == [
        "entry-points-fresh.json", "notes.json"]
    assert _cache_file().is_file()


def test_found_loads_as_importlib_metadata_does() -> None:
    assert Found("x", "os.path:join", None, None).load() is os.path.join
    assert Found("x", "os.path", None, None).load() is os.path
    assert Found("x", "os : sep [extra]", None, None).load() == os.sep
    with pytest.raises(ValueError):
        Found("x", "not a value!", None, None).load()
