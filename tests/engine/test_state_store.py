"""The state-store contract, run on every store: SQLite (a file) and PostgreSQL (a database).

Each test opens stores through ``open_store`` at one location, several at once where two
processes or hosts are played: locks are leases taken over only once expired (or at once
when the holder's process on this host is gone), fenced writes fail after a take-over,
runtime merges lose no key, a worker's claim and outcome land once, and a schema newer
than the code is refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.errors import LockLostError, StateError, StateLockedError
from orchestrator.state import SCHEMA_VERSION, InstanceWrite, StateStore, open_store
from orchestrator.state.leases import Holder, host_id


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.integration)])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str | Path:
    """Where a fresh state lives: a file, or an empty PostgreSQL database."""
    if request.param == "sqlite":
        return tmp_path / "state.db"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def opened(location) -> Callable[..., StateStore]:
    """Open stores at ``location`` (each its own connection: another process, as far as the store knows)."""
    stores: list[StateStore] = []

    def open_one(create: bool = True) -> StateStore:
        stores.append(open_store(location, create=create))
        return stores[-1]

    yield open_one
    for store in stores:
        store.close()


def _deploy(store: StateStore, name: str = "dep", instances: tuple[str, ...] = ("a_0", "b_0")) -> None:
    store.save_deployment(name, "bp.yaml", {"x": 1}, '{"plan": 1}', "hash", [(i, i[0]) for i in instances])


def _event(deployment: str, execution: int | None, message: str) -> tuple:
    return (time.time(), deployment, execution, None, None, None, "log", "info", message)


def test_a_deployment_round_trips_and_is_deleted_whole(opened):
    store = opened()
    _deploy(store)
    assert store.save_deployment("dep", "bp.yaml", {"x": 1}, '{"plan": 1}', "hash", [("a_0", "a")]) == 1
    assert store.save_deployment("dep", "bp.yaml", {"x": 2}, '{"plan": 2}', "hash", [("a_0", "a")]) == 2
    row = store.get_deployment("dep")
    assert (row.inputs, row.plan, row.plan_version) == ({"x": 2}, '{"plan": 2}', 2)
    assert store.plan_version("dep", 1) == '{"plan": 1}'
    assert store.deployment_ids() == ["dep"]
    assert set(store.instances("dep")) == {"a_0"}  # b_0 never existed: forgotten
    execution = store.start_execution("dep", "install")
    store.record("dep", "a_0", "started", '{"create": "succeeded"}', '{"ip": "10.0.0.1"}',
                 [_event("dep", execution, "created")], execution=execution, secret_keys=["ip"], version=2)
    store.end_execution(execution, "succeeded")
    inst = store.instances("dep", ["a_0"])["a_0"]
    assert (inst.state, inst.ops, inst.runtime, inst.secret_keys, inst.plan_version) == (
        "started", {"create": "succeeded"}, {"ip": "10.0.0.1"}, ["ip"], 2)
    assert store.instance_versions("dep") == {"a_0": 2}
    store.settle_plan("dep", 2, [], {"a_0"})
    assert store.plan_version("dep", 1) is None  # no instance needs it any more
    assert [e.message for e in store.events("dep")] == ["created"]
    assert store.executions("dep")[0][1:3] == ("install", "succeeded")
    assert store.last_request("dep") == ("install", "succeeded", None)
    assert store.last_execution("dep") == execution
    store.set_leftovers("dep", [{"instance": "a_0"}])
    assert store.get_deployment("dep").leftovers == [{"instance": "a_0"}]
    store.delete_deployment("dep")
    assert store.get_deployment("dep") is None and store.deployment_ids() == [] and store.events("dep") == []


def test_a_query_on_an_empty_state_finds_nothing_and_writes_nothing(opened, location):
    if isinstance(location, Path):
        location.touch()  # SQLite: an empty file (a missing one is "no state at PATH")
    reader = opened(create=False)
    assert reader.deployment_ids() == [] and reader.get_deployment("dep") is None and reader.lock("dep") is None
    writer = opened()
    _deploy(writer)
    assert writer.deployment_ids() == ["dep"]


def test_a_live_lease_of_another_host_holds_until_it_expires(opened, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_HOST_ID", "host-a")
    first = opened()
    _deploy(first)
    execution = first.start_execution("dep", "install", lease=0.6)
    monkeypatch.setenv("ORCHESTRATOR_HOST_ID", "host-b")
    second = opened()
    with pytest.raises(StateLockedError, match=r"deployment 'dep' is busy: execution \d+ \(install\) .* on host-a"):
        second.start_execution("dep", "uninstall")
    with pytest.raises(StateLockedError, match="its lease is live"):
        second.unlock("dep")
    assert first.renew_lease(execution, 0.6)
    time.sleep(0.8)
    taken = second.start_execution("dep", "uninstall")
    assert second.lock("dep").host == "host-b" and second.lock("dep").execution == taken
    assert not first.renew_lease(execution)  # the old holder learns it lost the lock
    with pytest.raises(LockLostError, match=f"execution {execution} no longer holds the lock.*host-b"):
        first.record("dep", "a_0", "started", "{}", None, [], execution=execution)
    assert [s for _, _, s, *_ in first.executions("dep")] == ["interrupted", "started"]


def test_a_lock_of_a_dead_process_on_this_host_is_taken_over_at_once(opened, monkeypatch):
    gone = Holder(2**22 + 7, host_id(), "")  # above pid_max: no such process
    monkeypatch.setattr(Holder, "current", classmethod(lambda cls: gone))
    dead = opened()
    _deploy(dead)
    execution = dead.start_execution("dep", "install", lease=600)
    monkeypatch.undo()
    lock, why = opened().unlock("dep")
    assert lock.execution == execution and why == f"pid {gone.pid} on {gone.host} is not running"


def test_unlock_force_stops_the_holder_at_its_next_fenced_write(opened):
    store = opened()
    _deploy(store)
    execution = store.start_execution("dep", "install")
    other = opened()
    with pytest.raises(StateLockedError):
        other.unlock("dep")
    lock, why = other.unlock("dep", force=True)
    assert lock.execution == execution and why is None
    assert other.unlock("dep") == (None, None)
    for write in (lambda: store.record("dep", "a_0", "started", "{}", None, [], execution=execution),
                  lambda: store.write("dep", [InstanceWrite("a_0", None, None, "{}")], [], execution=execution),
                  lambda: store.merge_runtime("dep", "a_0", {"k": 1}, [], execution=execution),
                  lambda: store.add_events([_event("dep", execution, "late")], execution=execution)):
        with pytest.raises(LockLostError, match="it was cleared"):
            write()
    assert store.events("dep") == [] and store.instances("dep")["a_0"].state == "uninitialized"
    assert store.executions("dep")[0][2] == "interrupted"


def test_one_of_many_concurrent_starts_wins_and_the_others_are_told_who(opened):
    stores = [opened() for _ in range(8)]
    _deploy(stores[0])
    results: list[object] = []

    def start(store: StateStore) -> None:
        try:
            results.append(store.start_execution("dep", "install"))
        except StateLockedError as exc:
            results.append(exc)

    threads = [threading.Thread(target=start, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    won = [r for r in results if isinstance(r, int)]
    assert len(won) == 1 and all("is busy" in str(r) for r in results if not isinstance(r, int))
    assert stores[0].lock("dep").execution == won[0]


def test_concurrent_merges_of_different_keys_lose_none(opened):
    stores = [opened() for _ in range(4)]
    _deploy(stores[0])
    execution = stores[0].start_execution("dep", "install")

    def merge(store: StateStore, n: int) -> None:
        for i in range(15):
            assert store.merge_runtime("dep", "a_0", {f"k{n}_{i}": i}, [], execution=execution)

    threads = [threading.Thread(target=merge, args=(s, n)) for n, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    runtime = stores[0].instances("dep")["a_0"].runtime
    assert len(runtime) == 60
    assert stores[1].merge_runtime("dep", "a_0", {"k0_0": "new"}, ["k1_0"])
    runtime = stores[2].instances("dep")["a_0"].runtime
    assert runtime["k0_0"] == "new" and "k1_0" not in runtime and len(runtime) == 59


def test_a_worker_claims_an_operation_once_and_its_outcome_is_recorded_once(opened):
    cli, worker_a, worker_b = opened(), opened(), opened()
    _deploy(cli)
    assert cli.dispatch_operation("dep", "a_0", "create", "t1") is None
    assert cli.outcomes("dep", ["t1"]) == {}  # not claimed yet
    assert worker_a.claim_operation("dep", "a_0", "create", "t1", "wa", lease=30)
    assert not worker_b.claim_operation("dep", "a_0", "create", "t1", "wb", lease=30)  # a live claim
    assert worker_a.claim_operation("dep", "a_0", "create", "t1", "wa", lease=30)  # its own: renewed
    worker_a.renew_claims("wa", 30)
    found = cli.outcomes("dep", ["t1", "other"])
    assert list(found) == ["t1"] and found["t1"].worker == "wa" and found["t1"].live_claim(time.time())
    # adopting a live claim returns it instead of dispatching again
    adopted = cli.dispatch_operation("dep", "a_0", "create", "t2", adopt=True)
    assert adopted is not None and adopted.token == "t1"
    assert worker_a.merge_runtime("dep", "a_0", {"ip": "1"}, [], token="t1")
    assert worker_a.finish_operation("dep", "a_0", "create", "t1", "wa", json.dumps({"ok": True}))
    assert not worker_a.finish_operation("dep", "a_0", "create", "t1", "wa", json.dumps({"ok": False}))
    assert json.loads(cli.outcomes("dep", ["t1"])["t1"].outcome) == {"ok": True}
    assert cli.dispatch_operation("dep", "a_0", "create", "t3", adopt=True).token == "t1"  # a success is kept
    # a new dispatch supersedes the old token: its late writes are refused
    assert cli.dispatch_operation("dep", "a_0", "create", "t4") is None
    assert not worker_a.merge_runtime("dep", "a_0", {"ip": "2"}, [], token="t1")
    assert not worker_a.claim_operation("dep", "a_0", "create", "t1", "wa", lease=30)
    # an expired claim is taken by another worker
    assert worker_a.claim_operation("dep", "a_0", "create", "t4", "wa", lease=0.05)
    time.sleep(0.1)
    assert worker_b.claim_operation("dep", "a_0", "create", "t4", "wb", lease=30)
    assert not worker_a.finish_operation("dep", "a_0", "create", "t4", "wa", "{}")
    # recording the instance settles (forgets) the dispatch
    execution = cli.start_execution("dep", "install")
    cli.record("dep", "a_0", "started", '{"create": "succeeded"}', None, [], execution=execution, forget=["create"])
    assert cli.outcomes("dep", ["t4"]) == {}
    assert cli.dispatch_operation("dep", "b_0", "create", "t5") is None
    cli.forget_operation("dep", "b_0", "create")
    assert worker_a.claim_operation("dep", "b_0", "create", "t5", "wa", lease=30) is False
    assert cli.instances("dep")["a_0"].runtime == {"ip": "1"}


def test_blobs_are_content_addressed_and_go_with_the_deployment(opened):
    store = opened()
    _deploy(store)
    store.put_blob("dep", "d1", b"\x00archive-1")
    store.put_blob("dep", "d1", b"ignored: same digest")
    assert opened().blob("dep", "d1") == b"\x00archive-1"
    store.put_blob("dep", "plan:d2", b"plan-2")
    assert store.blob("dep", "d1") == b"\x00archive-1" and store.blob("dep", "plan:d2") == b"plan-2"
    assert store.blob("other", "d1") is None
    store.delete_deployment("dep")
    assert store.blob("dep", "d1") is None


def test_events_are_read_in_order_from_an_id_on(opened):
    store, other = opened(), opened()
    _deploy(store)
    execution = store.start_execution("dep", "install")
    store.add_event(_event("dep", execution, "one"))
    other.add_events([_event("dep", execution, "two"), _event("dep", None, "three")], execution=execution)
    every = store.events("dep")
    assert [e.message for e in every] == ["one", "two", "three"]
    assert [e.message for e in store.events("dep", after=every[0].id)] == ["two", "three"]
    assert [e.message for e in store.events("dep", execution=execution)] == ["one", "two"]


def test_a_state_of_a_newer_schema_is_refused(opened, location):
    store = opened()
    _deploy(store)
    store.close()
    _set_version(location, 99)
    with pytest.raises(StateError, match=f"was written by a newer orchestrator \\(schema 99; this one reads up to "
                                         f"{SCHEMA_VERSION}\\): upgrade orchestrator-engine"):
        opened()
    with pytest.raises(StateError, match="newer orchestrator"):
        opened(create=False)


def test_a_state_of_schema_3_is_migrated_keeping_what_it_holds(opened, location):
    store = opened()
    _deploy(store)
    store.close()
    _to_schema_3(location)
    migrated = opened()
    assert migrated.get_deployment("dep").inputs == {"x": 1}
    migrated.put_blob("dep", "d", b"files")  # the worker tables exist again
    assert migrated.dispatch_operation("dep", "a_0", "create", "t") is None
    assert _version(location) == SCHEMA_VERSION


# -- reaching into each store's own database, as an older or newer orchestrator would have left it ---------


def _sql(location, *statements: str) -> list:
    if isinstance(location, Path):
        import sqlite3

        with sqlite3.connect(location) as db:
            return [db.execute(s).fetchall() for s in statements][-1]
    import psycopg

    with psycopg.connect(location, autocommit=True) as db:
        out: list = []
        for s in statements:
            cur = db.execute(s)
            out = cur.fetchall() if cur.description else []
        return out


def _version(location) -> int:
    if isinstance(location, Path):
        return _sql(location, "PRAGMA user_version")[0][0]
    return int(_sql(location, "SELECT value FROM meta WHERE key = 'schema_version'")[0][0])


def _set_version(location, version: int) -> None:
    if isinstance(location, Path):
        _sql(location, f"PRAGMA user_version = {version}")
    else:
        _sql(location, f"UPDATE meta SET value = '{version}' WHERE key = 'schema_version'")


def _to_schema_3(location) -> None:
    _sql(location, "DROP TABLE operations", "DROP TABLE resources")
    _set_version(location, 3)


@pytest.mark.integration
def test_a_dropped_connection_fails_one_call_in_a_sentence_and_the_next_call_reconnects(postgres_url):
    import psycopg

    store = open_store(postgres_url)
    try:
        _deploy(store)
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = "
                          "'orchestrator' AND pid != pg_backend_pid()")
        with pytest.raises(StateError, match=r"lost the connection to the PostgreSQL state postgresql://postgres:"
                                             r"\*\*\*@.*run the command again") as caught:
            store.deployment_ids()
        assert _password(postgres_url) not in str(caught.value)
        assert store.deployment_ids() == ["dep"]
    finally:
        store.close()


def _password(url: str) -> str:
    return url.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]


def test_a_dispatch_is_withdrawn_only_while_no_live_worker_holds_it(opened):
    store = opened()
    _deploy(store)
    store.dispatch_operation("dep", "a_0", "create", "t1")
    assert store.withdraw_operation("dep", "a_0", "create", "t1"), "queued: withdrawn"
    assert not store.claim_operation("dep", "a_0", "create", "t1", "w1", 30), "then no worker runs it"
    store.dispatch_operation("dep", "a_0", "create", "t2")
    assert store.claim_operation("dep", "a_0", "create", "t2", "w1", 30)
    assert not store.withdraw_operation("dep", "a_0", "create", "t2"), "a live claim stays"
    store.dispatch_operation("dep", "a_0", "configure", "t3")
    assert store.claim_operation("dep", "a_0", "configure", "t3", "w1", -1)  # a claim already lapsed
    assert store.withdraw_operation("dep", "a_0", "configure", "t3"), "a dead worker's claim is taken back"
