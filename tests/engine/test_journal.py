"""The execution's journal: what it stages rides with the next commit, commits of several
threads share transactions, a failed batch fails every commit it held, and the state
file's write-ahead log is checkpointed and started over beside a stream of commits."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from orchestrator import hookimpl
from orchestrator.deployments import Orchestrator
from orchestrator.engine.events import EventSink
from orchestrator.engine.journal import Journal
from orchestrator.errors import LockLostError, StateError
from orchestrator.plugins import get_plugin_manager
from orchestrator.state import InstanceWrite, SqliteStore
from orchestrator.state import checkpointer as checkpointer_module

IDS = tuple(f"n{i}_0" for i in range(40))


@pytest.fixture
def store(tmp_path: Path) -> SqliteStore:
    store = SqliteStore(tmp_path / "state.db")
    store.save_deployment("dep", "bp.yaml", {}, "{}", "hash", [(i, i.split("_")[0]) for i in IDS])
    yield store
    store.close()


def _state(store: SqliteStore, iid: str) -> tuple[str, dict]:
    row = store.instances("dep", [iid])[iid]
    return row.state, row.ops


def _write(iid: str, state: str, op: str = "create", outcome: str = "started") -> InstanceWrite:
    return InstanceWrite(iid, state, json.dumps({op: outcome}))


def _sink(store: SqliteStore, execution: int | None) -> tuple[EventSink, list]:
    sink = EventSink(store, "dep", execution)
    heard: list = []
    sink.listeners.append(heard.append)
    return sink, heard


def test_a_staged_write_waits_for_the_next_commit_of_any_instance(store):
    execution = store.start_execution("dep", "install")
    sink, heard = _sink(store, execution)
    journal = sink.journal
    journal.stage(_write("n0_0", "started", "start", "succeeded"), [sink.make("instance_finished", "started", "n0_0")])
    assert _state(store, "n0_0") == ("uninitialized", {})  # staged: not in the state, not heard of
    assert heard == []
    journal.commit(_write("n1_0", "creating"), [sink.make("operation_started", "create started", "n1_0")])
    assert _state(store, "n0_0") == ("started", {"start": "succeeded"})
    assert _state(store, "n1_0") == ("creating", {"create": "started"})
    assert heard == [] and store.events("dep") == []  # events wait for a flush (or a batch of their own)
    journal.flush()
    assert [e.message for e in heard] == ["started", "create started"]  # in the order they were made
    assert [e.message for e in store.events("dep")] == ["started", "create started"]


def test_events_go_in_batches_of_their_own_or_with_a_flush(store, monkeypatch):
    monkeypatch.setattr("orchestrator.engine.journal.EVENTS_BATCH", 4)
    execution = store.start_execution("dep", "install")
    sink, heard = _sink(store, execution)
    journal = sink.journal
    journal.commit(None, [sink.make("log", "alone")])  # events only: written at once
    assert [e.message for e in store.events("dep")] == ["alone"]
    for i in range(3):
        journal.commit(_write(f"n{i}_0", "creating"), [sink.make("operation_started", f"{i}", f"n{i}_0")])
    assert len(store.events("dep")) == 1 and len(heard) == 1  # three events: fewer than a batch
    journal.commit(_write("n3_0", "creating"), [sink.make("operation_started", "3", "n3_0")])
    assert [e.message for e in store.events("dep")] == ["alone", "0", "1", "2", "3"]
    assert [e.message for e in heard] == ["alone", "0", "1", "2", "3"]


def test_writes_of_one_instance_merge_and_a_runtime_write_keeps_its_state(store):
    execution = store.start_execution("dep", "install")
    journal = _sink(store, execution)[0].journal
    journal.stage(InstanceWrite("n0_0", "creating", json.dumps({"create": "succeeded"}), '{"a": 1}',
                                forget=("create",)))
    journal.stage(InstanceWrite("n0_0", None, None, '{"a": 2}'))  # ctx.instance.update() meanwhile
    journal.commit(_write("n0_0", "configuring", "configure"))
    row = store.instances("dep", ["n0_0"])["n0_0"]
    assert (row.state, row.ops, row.runtime) == ("configuring", {"configure": "started"}, {"a": 2})
    merged = InstanceWrite("n0_0", "a", "{}", forget=("x",)).merged(InstanceWrite("n0_0", None, None, "{}",
                                                                                  forget=("y",)))
    assert merged.state == "a" and merged.forget == ("x", "y")


def test_concurrent_commits_share_transactions_and_each_returns_once_its_write_is_in(store):
    execution = store.start_execution("dep", "install")
    journal = _sink(store, execution)[0].journal
    calls: list[int] = []
    write = store.write

    def slow_write(deployment, writes, events, execution=None):
        calls.append(len(writes))
        time.sleep(0.05)  # while this batch is written, the other threads' requests gather
        write(deployment, writes, events, execution)

    store.write = slow_write
    seen: dict[str, tuple] = {}

    def worker(iid: str) -> None:
        journal.commit(_write(iid, "creating"))
        seen[iid] = _state(store, iid)  # what another reader finds once commit returned

    threads = [threading.Thread(target=worker, args=(iid,)) for iid in IDS[:20]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert seen == {iid: ("creating", {"create": "started"}) for iid in IDS[:20]}
    assert sum(calls) == 20 and len(calls) < 20, calls  # fewer transactions than commits


def test_a_failed_batch_fails_every_commit_it_held_and_later_ones_still_land(store, monkeypatch):
    execution = store.start_execution("dep", "install")
    journal = _sink(store, execution)[0].journal
    write = store.write
    failing = [True]

    def full_disk(deployment, writes, events, execution=None):
        if failing[0]:
            raise StateError("the disk holding the state is full")
        write(deployment, writes, events, execution)

    monkeypatch.setattr(store, "write", full_disk)
    first = journal.request(_write("n0_0", "creating"))
    second = journal.request(_write("n1_0", "creating"))
    with pytest.raises(StateError, match="full"):
        journal.sync(first)
    with pytest.raises(StateError, match="full"):
        journal.sync(second)  # it was in the same batch: its mark is not in the state either
    failing[0] = False
    journal.commit(_write("n2_0", "creating"))
    assert _state(store, "n0_0")[0] == "uninitialized"
    assert _state(store, "n2_0")[0] == "creating"


def test_after_a_lost_lock_instance_writes_fail_but_the_closing_events_land(store):
    execution = store.start_execution("dep", "install")
    sink, _ = _sink(store, execution)
    store.unlock("dep", force=True)
    with pytest.raises(LockLostError):
        sink.journal.commit(_write("n0_0", "creating"))
    with pytest.raises(LockLostError):  # a success finishing meanwhile: refused, not left to sink the next
        sink.journal.stage(_write("n1_0", "started"), [sink.make("instance_finished", "started", "n1_0")])
    sink.emit(sink.make("workflow_failed", "install failed"))
    assert [e.type for e in store.events("dep")] == ["workflow_failed"]
    assert _state(store, "n0_0")[0] == "uninitialized"


def test_a_standalone_journal_publishes_nothing_it_did_not_store(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    heard: list = []
    journal = Journal(store, "dep", None, lambda *events: heard.extend(events))
    with pytest.raises(StateError):
        journal.commit(_write("ghost_0", "creating"))  # no such instance
    assert heard == []
    store.close()


def _wal_pages(path: Path) -> int:
    wal = path.with_name(path.name + "-wal")
    return wal.stat().st_size // 4096 if wal.exists() else 0


def test_the_log_is_checkpointed_and_started_over_during_a_stream_of_commits(store, monkeypatch):
    monkeypatch.setattr(checkpointer_module, "EVERY_COMMITS", 50)
    execution = store.start_execution("dep", "install")  # starts the checkpointer
    assert any(t.name == "state-checkpoint" for t in threading.enumerate())
    journal = _sink(store, execution)[0].journal
    commits = 1500
    for n in range(commits):
        iid = IDS[n % len(IDS)]
        journal.commit(_write(iid, f"s{n}"), [])
        if n % 100 == 99:
            time.sleep(0.06)  # a poll of the checkpointer
    pages = _wal_pages(store.path)
    # Each commit appends a frame or more: a log never started over would hold them all.
    assert 0 < pages < commits // 2, pages
    # What was checkpointed is in the database file itself (read without the log).
    raw = sqlite3.connect(f"file:{store.path}?immutable=1", uri=True)
    states = dict(raw.execute("SELECT id, state FROM instances WHERE deployment = 'dep'").fetchall())
    raw.close()
    assert any(state.startswith("s") for state in states.values())
    store.close()
    assert not any(t.name == "state-checkpoint" for t in threading.enumerate())
    assert not store.path.with_name(store.path.name + "-wal").exists()  # the last close checkpointed the rest


def test_a_listener_that_raises_is_dropped_and_the_write_stands(store):
    execution = store.start_execution("dep", "install")
    sink, heard = _sink(store, execution)

    def broken(event) -> None:
        raise ValueError("the terminal went away")

    sink.listeners.insert(0, broken)
    sink.journal.commit(_write("n0_0", "creating"), [sink.make("operation_started", "create started", "n0_0")])
    sink.emit(sink.make("log", "later"))
    assert _state(store, "n0_0")[0] == "creating"
    assert [e.message for e in heard] == ["create started", "later"]  # the others still hear everything
    assert len(sink.listeners) == 1
    assert sink.dropped == ["stopped showing events: ValueError: the terminal went away"]


class Chatty:
    """One hook that logs a lot, then one that logs while nothing else writes for a while."""

    @hookimpl
    def register_types(self) -> dict:
        return {"node_types": {"chatty.Node": {"derived_from": "orchestrator.nodes.Root"}}}

    @hookimpl
    def create(self, ctx) -> None:
        for i in range(300):
            ctx.logger.info("line %d", i)

    @hookimpl
    def start(self, ctx) -> None:
        ctx.logger.info("waiting")
        time.sleep(0.5)  # the supervisor's flush stores the line meanwhile


def test_log_lines_ride_with_other_writes_and_the_flush_not_a_transaction_each(tmp_path, monkeypatch):
    transactions = []
    for name in ("write", "add_events"):
        real = getattr(SqliteStore, name)
        monkeypatch.setattr(SqliteStore, name, lambda self, *a, _real=real, _name=name, **k: (
            transactions.append(_name), _real(self, *a, **k))[1])
    (tmp_path / "bp.yaml").write_text("node_templates:\n  talk: {type: chatty.Node}\n")
    seen: list = []
    orch = Orchestrator(pm=get_plugin_manager([Chatty()], entry_points=False, env={}), state_path=tmp_path / "s.db")
    try:
        done = orch.install(tmp_path / "bp.yaml", listeners=[
            lambda e: e.type == "log" and e.message == "waiting" and seen.append(orch.store.events("bp"))])
        assert done.ok, done.failures
        logs = [e.message for e in orch.store.events("bp") if e.type == "log"]
    finally:
        orch.close()
    assert logs == [f"line {i}" for i in range(300)] + ["waiting"]
    assert len(transactions) < 30, transactions
    assert seen and seen[0][-1].message == "waiting", "heard once stored: a line logged in a long hook is not held back"
