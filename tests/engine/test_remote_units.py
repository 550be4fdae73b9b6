"""The pieces of ``--executor celery`` that need no broker: messages, shipped files, worker records."""

from __future__ import annotations

import io
import json
import os
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from orchestrator.errors import NonRecoverableError, OperationRetry, RecoverableError, SkipOperation
from orchestrator.plan import Plan, PlannedInstance, PlannedNode
from orchestrator.remote import files
from orchestrator.remote.messages import (
    RemoteError,
    RemoteExit,
    apply_diff,
    exception_of,
    failure,
    runtime_diff,
    success,
)
from orchestrator.remote.worker import LogLines, Worker, WorkerRecords
from orchestrator.state import SqliteStore


def round_trip(exc: BaseException) -> BaseException:
    try:
        raise exc
    except BaseException as raised:
        outcome = json.loads(failure(raised, {}, "w1", masker=lambda t: t.replace("hunter2", "***")))
    return exception_of(outcome)


@pytest.mark.parametrize(("raised", "cls"), [
    (NonRecoverableError("bad key hunter2"), NonRecoverableError),
    (RecoverableError("throttled", retry_after=7), RecoverableError),
    (OperationRetry("not yet", retry_after=2), OperationRetry),
    (SkipOperation("dry run"), SkipOperation),
])
def test_engine_exceptions_come_back_as_the_engines_classes(raised: BaseException, cls: type):
    back = round_trip(raised)
    assert type(back) is cls
    assert "hunter2" not in str(back) and "hunter2" not in "".join(getattr(back, "__notes__", []))
    if isinstance(raised, RecoverableError):
        assert back.retry_after == raised.retry_after
    assert any("on worker w1" in note for note in back.__notes__), "the worker's traceback rides along"


def test_other_exceptions_keep_their_class_name_and_base_exceptions_are_not_retried():
    back = round_trip(KeyError("missing"))
    assert isinstance(back, RemoteError) and type(back).__name__ == "KeyError"
    assert round_trip(KeyError("again")).__class__ is type(back), "one class per name"
    stop = round_trip(SystemExit("bye"))
    assert isinstance(stop, RemoteExit) and not isinstance(stop, Exception)
    assert type(stop).__name__ == "SystemExit"


def test_runtime_diffs_are_key_by_key():
    before = {"a": 1, "b": 2, "gone": True}
    after = {"a": 1, "b": 3, "new": [1]}
    diff = runtime_diff(before, after)
    assert diff == {"set": {"b": 3, "new": [1]}, "unset": ["gone"]}
    other = {"a": 1, "b": 2, "gone": True, "theirs": "kept"}
    apply_diff(other, diff)
    assert other == {"a": 1, "b": 3, "new": [1], "theirs": "kept"}
    assert runtime_diff(after, dict(after)) is None
    assert json.loads(success({"x": object()}, {}, "w"))["result"]["x"].startswith("<object")


def test_the_blueprints_files_ship_without_hidden_files_or_the_state(tmp_path: Path):
    (tmp_path / "bp.yaml").write_text("node_templates: {}\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "run.sh").write_text("echo hi\n")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref\n")
    for name in ("state.db", "state.db-wal", "state.db.backup", "state.db.lineage"):
        (tmp_path / name).write_text("x")
    digest, data = files.pack(tmp_path, state=tmp_path / "state.db")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        assert sorted(tar.getnames()) == ["bp.yaml", "scripts/run.sh"]
    assert files.pack(tmp_path, state=tmp_path / "state.db")[0] == digest, "same files, same digest"
    assert files.pack(tmp_path, limit=5) is None, "too big: not shipped"


def test_files_unpack_once_into_the_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    (tmp_path / "bp").mkdir()
    (tmp_path / "bp" / "motd.txt").write_text("hello\n")
    digest, data = files.pack(tmp_path / "bp")
    where = files.unpack(digest, data)
    assert (where / "motd.txt").read_text() == "hello\n"
    assert where.is_relative_to(tmp_path / "cache")
    assert files.unpack(digest, b"not read again") == where


def test_unpacked_blueprints_unused_for_a_week_are_dropped_by_the_next_unpack(tmp_path: Path,
                                                                              monkeypatch: pytest.MonkeyPatch):
    # A long-lived worker sees a new digest per blueprint version: without this its cache only grows.
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    versions = []
    for n in range(3):
        (tmp_path / f"bp{n}").mkdir()
        (tmp_path / f"bp{n}" / "motd.txt").write_text(f"version {n}\n")
        versions.append(files.pack(tmp_path / f"bp{n}"))
    old, used = (files.unpack(*v) for v in versions[:2])
    long_ago = time.time() - files.KEEP_UNUSED - 60
    for path in (old, used):
        os.utime(path, (long_ago, long_ago))
    crashed = Path(tempfile.mkdtemp(prefix=".unpack-", dir=old.parent))
    os.utime(crashed, (long_ago, long_ago))
    assert files.unpacked(versions[1][0]) == used  # a worker used it just now: it stays
    newest = files.unpack(*versions[2])
    assert sorted(p.name for p in newest.parent.iterdir()) == sorted([used.name, newest.name])
    assert files.unpacked(versions[0][0]) is None
    assert (files.unpack(*versions[0]) / "motd.txt").read_text() == "version 0\n", "dropped too early: unpacked again"


def test_a_duplicate_delivery_is_dropped_and_an_outcome_recorded_once(tmp_path: Path):
    plan = Plan({"a": PlannedNode("a", "t", ["t"], None, {}, [], ["a_0"])}, {"a_0": PlannedInstance("a_0", "a", None, [])}, {})
    store = SqliteStore(tmp_path / "s.db")
    store.save_deployment("d", "bp.yaml", {}, plan.to_json(), plan.structure_hash(), [("a_0", "a")])
    store.dispatch_operation("d", "a_0", "create", "tok")
    assert store.claim_operation("d", "a_0", "create", "tok", "w1", 30)
    assert not store.claim_operation("d", "a_0", "create", "tok", "w2", 30), "a live claim is not taken"
    assert store.finish_operation("d", "a_0", "create", "tok", "w1", '{"ok": true}')
    assert not store.finish_operation("d", "a_0", "create", "tok", "w1", '{"ok": false}'), "once"
    assert not store.claim_operation("d", "a_0", "create", "tok", "w2", 30), "finished: dropped"
    records = WorkerRecords(store, "d", plan, {})
    assert records["a_0"].state == "uninitialized" and len(records) == 1
    with pytest.raises(KeyError):
        records["nope"]
    store.close()


def test_a_worker_without_the_plan_says_which_state_it_reads(tmp_path: Path):
    store = SqliteStore(tmp_path / "s.db")
    worker = Worker.__new__(Worker)
    worker._plans, worker._lock = {}, __import__("threading").Lock()
    with pytest.raises(NonRecoverableError, match="is this worker using the CLI's state"):
        Worker.plan(worker, store, "d", "plan:missing")
    store.close()


def test_a_worker_reopens_a_sqlite_state_deleted_and_made_again(tmp_path: Path):
    worker = Worker.__new__(Worker)
    worker._stores, worker._lock = {}, __import__("threading").Lock()
    location = str(tmp_path / "s.db")
    SqliteStore(Path(location)).close()
    first = Worker.store(worker, location)
    assert Worker.store(worker, location) is first, "opened once"
    for path in tmp_path.glob("s.db*"):
        path.unlink()
    plan = Plan({}, {}, {})
    fresh = SqliteStore(Path(location))
    fresh.save_deployment("d", "bp.yaml", {}, plan.to_json(), plan.structure_hash(), [])
    fresh.close()
    again = Worker.store(worker, location)
    assert again is not first and again.get_deployment("d") is not None, "claims go to the new file"
    again.close()


def test_a_workers_log_lines_are_stored_together_soon_and_all_before_the_outcome():
    class Store:
        def __init__(self) -> None:
            self.calls: list[list[tuple]] = []

        def add_events(self, rows: list[tuple], execution: int | None = None) -> None:
            self.calls.append(rows)

    store = Store()
    lines = LogLines(store)  # type: ignore[arg-type]
    for i in range(100):
        lines.add(("line", i))
    lines.close()  # the hook returned: what is left goes in before its outcome
    assert [row[1] for call in store.calls for row in call] == list(range(100))
    assert len(store.calls) < 10, "not a round trip per line"
    lines.add(("waiting", 0))  # then a long silence: the line is not held back for it
    deadline = time.monotonic() + 10
    while store.calls[-1][-1] != ("waiting", 0):
        assert time.monotonic() < deadline, "a lone line was never stored"
        time.sleep(0.01)
