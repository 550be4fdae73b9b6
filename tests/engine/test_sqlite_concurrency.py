"""Several processes on one SQLite state file (CI jobs on different deployments): safe.

No commit of one process is lost because another process closed its last connection (it
must never believe it is the last user and delete the WAL from under the others), the
lineage check never refuses a state that merely changed meanwhile, and every execution
ends with its lock released.
"""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
import threading
import time
import traceback
from pathlib import Path

import pytest

from orchestrator.errors import StateError
from orchestrator.state import SqliteStore
from orchestrator.state.safety import read_lineage

_IN_ANOTHER_PROCESS = """
import sys
from orchestrator.state import SqliteStore
from orchestrator.state.safety import read_lineage
store = SqliteStore(sys.argv[1])
if sys.argv[2] == "write":
    store.save_deployment("theirs", "bp.yaml", {}, "{}", "hash", [("a_0", "a")])
else:
    print(",".join(sorted(store.deployment_ids())))
store.close()
"""


def _other_process(state: Path, action: str) -> str:
    done = subprocess.run([sys.executable, "-c", _IN_ANOTHER_PROCESS, str(state), action],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_process_closing_its_last_connection_never_deletes_the_wal_another_one_uses(tmp_path):
    state = tmp_path / "state.db"
    first = SqliteStore(state)
    first.save_deployment("first", "bp.yaml", {}, "{}", "hash", [("a_0", "a")])
    first.close()  # the last connection: the WAL is checkpointed and deleted
    mine = SqliteStore(state)  # the first to open it again (reads its header: no WAL)
    try:
        _other_process(state, "write")  # opens, writes, closes: it must see that we still use it
        assert state.with_name("state.db-wal").exists()
        mine.save_deployment("mine", "bp.yaml", {}, "{}", "hash", [("a_0", "a")])
    finally:
        mine.close()
    assert _other_process(state, "read") == "first,mine,theirs"


def _cycle(state: str, worker: int, deployments: int, errors: multiprocessing.Queue) -> None:
    """One "CLI" per deployment: open the state, install it, end the execution, close."""
    try:
        for n in range(deployments):
            name = f"dep-{worker}-{n}"
            store = SqliteStore(state)
            try:
                execution = store.start_execution(name, "install", prepare=lambda s=store, d=name: s.save_deployment(
                    d, "bp.yaml", {}, "{}", "hash", [("a_0", "a")]))
                store.record(name, "a_0", "started", '{"create": "succeeded"}', '{"k": 1}', [], execution=execution)
                store.end_execution(execution, "succeeded")
            finally:
                store.close()
            reader = SqliteStore(state, create=False)  # a query: checks the lineage
            reader.close()
    except BaseException:
        errors.put(f"worker {worker}: {traceback.format_exc()}")


@pytest.mark.integration
def test_many_processes_installing_different_deployments_on_one_file_lose_nothing(tmp_path):
    state = tmp_path / "state.db"
    workers, each = 6, 8
    errors: multiprocessing.Queue = multiprocessing.get_context("spawn").Queue()
    context = multiprocessing.get_context("spawn")
    procs = [context.Process(target=_cycle, args=(str(state), w, each, errors)) for w in range(workers)]
    started = time.monotonic()
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert all(p.exitcode == 0 for p in procs)
    found = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert not found, "\n".join(found)
    store = SqliteStore(state, create=False)
    try:
        names = {f"dep-{w}-{n}" for w in range(workers) for n in range(each)}
        assert set(store.deployment_ids()) == names
        for name in names:
            assert store.lock(name) is None, name
            assert [e[2] for e in store.executions(name)] == ["succeeded"], name
            assert store.instances(name)["a_0"].runtime == {"k": 1}, name
    finally:
        store.close()
    assert time.monotonic() - started < 300


def test_deployments_created_and_deleted_meanwhile_are_never_taken_for_a_lost_state(tmp_path):
    """Stores of their own (other processes, as far as the lineage knows) create and delete
    deployments while others open the state and check its lineage: none is refused, and the
    lineage ends up naming exactly what the state holds."""
    state = tmp_path / "state.db"
    keeper = SqliteStore(state)
    keeper.save_deployment("kept", "bp.yaml", {}, "{}", "hash", [("a_0", "a")])
    stop = threading.Event()
    errors: list[str] = []

    def churn(n: int) -> None:
        store = SqliteStore(state)
        try:
            for i in range(25):
                store.save_deployment(f"dep-{n}-{i}", "bp.yaml", {}, "{}", "hash", [("a_0", "a")])
                store.delete_deployment(f"dep-{n}-{i}")
        except StateError as exc:
            errors.append(str(exc))
        finally:
            store.close()

    def check() -> None:
        while not stop.is_set():
            try:
                SqliteStore(state, create=False).close()
            except StateError as exc:
                errors.append(str(exc))
                return

    checkers = [threading.Thread(target=check) for _ in range(3)]
    churners = [threading.Thread(target=churn, args=(n,)) for n in range(3)]
    for t in checkers + churners:
        t.start()
    for t in churners:
        t.join()
    stop.set()
    for t in checkers:
        t.join()
    keeper.close()
    assert not errors, errors[0]
    lineage = read_lineage(state)
    assert lineage is not None and lineage.deployments == {"kept"}


def test_a_closed_store_says_so_in_a_sentence(tmp_path):
    store = SqliteStore(tmp_path / "state.db")
    store.close()
    store.close()  # twice is harmless
    with pytest.raises(StateError):
        store.deployment_ids()


def test_an_execution_whose_end_cannot_be_recorded_is_not_a_success(orch, tmp_path, monkeypatch):
    """The state still says "started" with the lock held: the command must not exit 0."""
    (tmp_path / "bp.yaml").write_text("node_templates: {a: {type: orchestrator.nodes.Root}}")

    def refuse(self: SqliteStore, *args: object) -> None:
        raise StateError("the state stayed locked by another process for too long")

    monkeypatch.setattr(SqliteStore, "end_execution", refuse)
    run = orch.install(tmp_path / "bp.yaml")
    assert not run.ok
    assert any("could not be marked succeeded" in note for note in run.result.notes)
