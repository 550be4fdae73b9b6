"""The state file under damage, loss, odd paths and a full disk, through the real CLI.

Every problem gives one message naming the file and what to do (exit 1, or 2 for a bad
path) and no traceback, for every command; queries never create anything; a state that
lost deployments is refused, and ``--state-recover`` puts the backup back.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import sqlite3
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from engine_helpers import clean_failure

from orchestrator.state import SCHEMA_VERSION

pytestmark = pytest.mark.integration

BLUEPRINT = """
node_templates:
  a: {type: journal.Node}
  b: {type: journal.Node, relationships: [{type: journal.connected_to, target: a}]}
outputs:
  where: {value: {get_attribute: [a, address]}}
"""

COMMANDS = [("status",), ("outputs",), ("events",), ("uninstall",), ("install", "bp.yaml"), ("unlock", "-d", "bp")]


@pytest.fixture
def installed(cli, tmp_path: Path) -> Path:
    (tmp_path / "bp.yaml").write_text(BLUEPRINT)
    state = tmp_path / "st" / "state.db"
    result = cli("install", "bp.yaml", "--state", str(state))
    assert result.returncode == 0, result.stderr
    return state


def _garbage(state: Path) -> None:
    state.write_bytes(b"this is not a state file\n" * 100)


def _truncated(state: Path) -> None:
    data = state.read_bytes()
    state.write_bytes(data[: len(data) // 2])


def _newer(state: Path) -> None:
    with sqlite3.connect(state) as db:
        db.execute("PRAGMA user_version = 99")


def _flipped(sql: str) -> Callable[[Path], None]:
    """A value changed where it is stored, as a flipped byte does: SQLite keeps no checksums, so
    nothing notices before the value is read."""
    def damage(state: Path) -> None:
        with contextlib.closing(sqlite3.connect(state)) as db, db:
            db.execute(sql)
    return damage


_NOT_JSON = _flipped("UPDATE deployments SET plan = substr(plan, 1, 40)")
_NOT_UTF8 = _flipped("UPDATE instances SET runtime = CAST(x'7b2261223a2022ff227d' AS TEXT)")
_NOT_A_PLAN = _flipped("UPDATE deployments SET plan = replace(plan, '\"nodes\"', '\"nodez\"')")
DAMAGE = [
    (_garbage, "is damaged (file is not a database)"),
    (_truncated, "is damaged (database disk image is malformed"),
    (_newer, f"was written by a newer orchestrator (schema 99; this one reads up to {SCHEMA_VERSION})"),
    (_NOT_JSON, "is damaged (a stored value is not JSON"),
    (_NOT_UTF8, "is damaged (a stored text is not UTF-8"),
    (_NOT_A_PLAN, "is damaged (a stored plan does not have the layout of one"),
]


@pytest.mark.parametrize("damage, needle", DAMAGE, ids=["not-a-database", "truncated", "newer-version", "not-json",
                                                       "not-utf8", "not-a-plan"])
def test_every_command_on_a_damaged_state_says_so_in_one_line(cli, installed, damage, needle):
    damage(installed)
    commands = COMMANDS if damage is _garbage else [("status",), ("install", "bp.yaml")]  # every kind, once
    for command in commands:
        clean_failure(cli(*command, "--state", str(installed)), str(installed), needle)


@pytest.mark.parametrize("damage", [_NOT_JSON, _NOT_UTF8, _NOT_A_PLAN], ids=["not-json", "not-utf8", "not-a-plan"])
def test_state_recover_finds_a_damaged_value_and_puts_the_backup_back(cli, installed, damage):
    assert cli("install", "bp.yaml", "--state", str(installed)).returncode == 0  # the backup holds the deployment
    damage(installed)
    result = cli("status", "--state", str(installed), "--state-recover")
    assert result.returncode == 0, result.stderr
    assert f"warning: restored {installed} from {installed}.backup" in result.stderr
    assert "a_0" in result.stdout and "started" in result.stdout
    assert cli("uninstall", "--state", str(installed)).returncode == 0


def test_a_damaged_state_is_recovered_from_the_backup_taken_when_the_last_execution_started(cli, installed,
                                                                                              tmp_path):
    # a second execution, so that the backup holds the installed deployment
    assert cli("install", "bp.yaml", "--state", str(installed)).returncode == 0
    _garbage(installed)
    result = cli("status", "--state", str(installed), "--state-recover")
    assert result.returncode == 0, result.stderr
    assert f"warning: restored {installed} from {installed}.backup" in result.stderr
    assert "a_0" in result.stdout and "started" in result.stdout
    kept = [p.name for p in installed.parent.iterdir() if ".damaged-" in p.name]
    assert len(kept) == 1 and (installed.parent / kept[0]).read_bytes().startswith(b"this is not")
    assert cli("uninstall", "--state", str(installed)).returncode == 0


@pytest.mark.parametrize("how", ["emptied", "deleted", "replaced"])
def test_a_state_that_lost_its_deployments_is_refused_not_read_as_empty(cli, installed, tmp_path, how):
    assert cli("install", "bp.yaml", "--state", str(installed)).returncode == 0
    if how == "emptied":
        installed.write_bytes(b"")
    elif how == "deleted":
        installed.unlink()
    else:
        other = tmp_path / "other" / "state.db"
        (tmp_path / "other.yaml").write_text("node_templates: {x: {type: journal.Node}}")
        assert cli("install", "other.yaml", "--state", str(other)).returncode == 0
        installed.write_bytes(other.read_bytes())
    creates = sum(line.startswith("create ") for line in (tmp_path / "journal.log").read_text().splitlines())
    commands = COMMANDS if how == "emptied" else [("status",), ("install", "bp.yaml")]
    for command in commands:
        clean_failure(cli(*command, "--state", str(installed)), str(installed), "held deployments (bp)",
                      "--state-recover", f"{installed}.backup")
    after = sum(line.startswith("create ") for line in (tmp_path / "journal.log").read_text().splitlines())
    assert after == creates  # install did not create everything again
    recovered = cli("install", "bp.yaml", "--state", str(installed), "--state-recover")
    assert recovered.returncode == 0, recovered.stderr
    assert "warning: restored" in recovered.stderr
    final = (tmp_path / "journal.log").read_text().splitlines()
    assert sum(line.startswith("create ") for line in final) == creates  # nothing created twice


def test_queries_never_create_a_file_or_folder(cli, tmp_path):
    for command in ("status", "outputs", "events"):
        result = cli(command, "--state", str(tmp_path / "typo" / "state.db"))
        clean_failure(result, f"no state at {tmp_path / 'typo' / 'state.db'}", code=2)
        result = cli(command, "--state", str(tmp_path / "state.db"))
        clean_failure(result, "no state at", code=2)
    assert not (tmp_path / "typo").exists() and not (tmp_path / "state.db").exists()
    assert not (tmp_path / ".orchestrator").exists()
    (tmp_path / "dir").mkdir()
    clean_failure(cli("status", "--state", str(tmp_path / "dir")), "is a directory", code=2)


def test_the_state_and_everything_beside_it_is_readable_by_its_owner_only(cli, installed):
    assert cli("install", "bp.yaml", "--state", str(installed)).returncode == 0  # a second run: a backup
    assert stat.S_IMODE(installed.parent.stat().st_mode) == 0o700
    files = {p.name: stat.S_IMODE(p.stat().st_mode) for p in installed.parent.iterdir()}
    assert {"state.db", "state.db.backup", "state.db.lineage"} <= files.keys()
    assert set(files.values()) == {0o600}, files
    # a state made readable by others is tightened by the next run
    os.chmod(installed, 0o644)
    assert cli("install", "bp.yaml", "--state", str(installed)).returncode == 0
    assert stat.S_IMODE(installed.stat().st_mode) == 0o600


V1_SCHEMA = """
CREATE TABLE deployments (id TEXT PRIMARY KEY, blueprint TEXT NOT NULL, inputs TEXT NOT NULL, plan TEXT NOT NULL,
    structure TEXT NOT NULL, created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE instances (deployment TEXT NOT NULL, id TEXT NOT NULL, node TEXT NOT NULL, state TEXT NOT NULL,
    ops TEXT NOT NULL, runtime TEXT NOT NULL, updated_at REAL NOT NULL, PRIMARY KEY (deployment, id)) WITHOUT ROWID;
CREATE TABLE executions (id INTEGER PRIMARY KEY, deployment TEXT NOT NULL, workflow TEXT NOT NULL,
    status TEXT NOT NULL, pid INTEGER NOT NULL, host TEXT NOT NULL, started_at REAL NOT NULL, ended_at REAL, error TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY, ts REAL NOT NULL, deployment TEXT NOT NULL, execution INTEGER,
    instance TEXT, operation TEXT, plugin TEXT, type TEXT NOT NULL, level TEXT NOT NULL, message TEXT NOT NULL);
CREATE INDEX events_by_deployment ON events (deployment, id);
CREATE TABLE locks (deployment TEXT PRIMARY KEY, execution INTEGER NOT NULL, pid INTEGER NOT NULL,
    host TEXT NOT NULL, proc_start TEXT NOT NULL, workflow TEXT NOT NULL, acquired_at REAL NOT NULL);
"""


def test_a_state_of_the_previous_version_is_migrated_keeping_a_copy(cli, installed, tmp_path):
    with sqlite3.connect(installed) as db:
        rows = {t: db.execute(f"SELECT * FROM {t}").fetchall() for t in ("deployments", "instances")}
    old = tmp_path / "old" / "state.db"
    old.parent.mkdir()
    indexed = [(*r[:4], r[4].replace("a_0/journal.connected_to", "0"), *r[5:7]) for r in rows["instances"]]
    assert any('"establish:0": "succeeded"' in r[4] for r in indexed)  # as version 1 named it
    with sqlite3.connect(old) as db:
        db.executescript(V1_SCHEMA)
        db.executemany("INSERT INTO deployments VALUES (?, ?, ?, ?, ?, ?, ?)", [r[:7] for r in rows["deployments"]])
        db.executemany("INSERT INTO instances VALUES (?, ?, ?, ?, ?, ?, ?)", indexed)
        db.execute("PRAGMA user_version = 1")
    status = cli("status", "--state", str(old))
    assert status.returncode == 0, status.stderr
    assert "a_0" in status.stdout and "started" in status.stdout
    assert (old.parent / "state.db.v1").exists()
    with sqlite3.connect(old) as db:
        ops = json.loads(db.execute("SELECT ops FROM instances WHERE id = 'b_0'").fetchone()[0])
        assert ops["establish:a_0/journal.connected_to"] == "succeeded"
        assert db.execute("SELECT count(*) FROM plans").fetchone()[0] == 1
    assert cli("plan", "bp.yaml", "-d", "bp", "--state", str(old)).stdout.startswith("No changes")
    mark = len((tmp_path / "journal.log").read_text().splitlines())
    assert cli("uninstall", "--state", str(old)).returncode == 0
    assert "unlink b_0 a_0" in (tmp_path / "journal.log").read_text().splitlines()[mark:]


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True)
    if result.returncode != 0:
        if os.environ.get("CI"):
            pytest.fail(f"mount {' '.join(args)} failed: {result.stderr}")
        pytest.skip(f"cannot mount here ({result.stderr.strip()}); CI runs this as root")


@pytest.fixture
def mounts():
    done: list[Path] = []
    yield done
    for path in reversed(done):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def test_a_state_on_a_read_only_filesystem_is_read_by_queries_and_refused_by_workflows(cli, installed, tmp_path,
                                                                                      mounts):
    ro = tmp_path / "ro"
    ro.mkdir()
    _mount("--bind", str(installed.parent), str(ro))
    mounts.append(ro)
    _mount("-o", "remount,ro,bind", str(ro))
    state = ro / "state.db"
    assert cli("status", "--state", str(state)).returncode == 0
    assert json.loads(cli("outputs", "--state", str(state), "--json").stdout) == {"where": "addr-a_0"}
    assert cli("events", "--state", str(state)).returncode == 0
    for command in (("uninstall",), ("install", "bp.yaml"), ("unlock", "-d", "bp")):
        clean_failure(cli(*command, "--state", str(state)), "is read-only", str(state))
    fresh = cli("install", "bp.yaml", "--state", str(ro / "new" / "state.db"))
    clean_failure(fresh, "read-only")


def test_a_full_disk_stops_the_run_once_and_resume_repeats_only_what_was_not_recorded(cli, tmp_path, mounts):
    disk = tmp_path / "disk"
    disk.mkdir()
    _mount("-t", "tmpfs", "-o", "size=400k", "tmpfs", str(disk))
    mounts.append(disk)
    (tmp_path / "big.yaml").write_text("node_templates:\n  n: {type: journal.Node, instances: 40, "
                                       f"properties: {{log: '{'x' * 3000}'}}}}\n")
    state = disk / "state.db"
    full = cli("install", "big.yaml", "--state", str(state), "--concurrency", "4")
    assert full.returncode == 1
    assert "Traceback" not in full.stderr
    assert full.stderr.count("free some space") == 1 and "could not be marked failed either" in full.stderr, full.stderr
    recorded = {i for i, (_, ops) in _rows(state).items() if ops.get("create") == "succeeded"}
    assert recorded, "nothing was recorded before the disk filled up"
    _mount("-o", "remount,size=16m", str(disk))
    resumed = cli("install", "big.yaml", "--state", str(state), "--concurrency", "4")
    assert resumed.returncode == 0, resumed.stderr
    done = collections.Counter(line for line in (tmp_path / "journal.log").read_text().splitlines()
                               if line.startswith("done create "))
    assert not [line for line, n in done.items() if n > 1 and line.split()[-1] in recorded]
    assert {s for s, _ in _rows(state).values()} == {"started"}


def _rows(state: Path) -> dict[str, tuple[str, dict]]:
    with sqlite3.connect(state) as db:
        return {i: (s, json.loads(o)) for i, s, o in db.execute("SELECT id, state, ops FROM instances")}
