"""The dependency walk: workers start as work appears (never more than the concurrency), every
instance runs once after what it waits for, and idle workers are let go when a stop comes."""

from __future__ import annotations

import threading
import time

from orchestrator.engine.scheduler import Scheduler


class Pool:
    """Workers as the runner makes them: each takes instances until the scheduler has none."""

    def __init__(self, graph: dict[str, set[str]], concurrency: int, work: float = 0.0,
                 refuse_after: int | None = None) -> None:
        self.stop = threading.Event()
        self.scheduler = Scheduler(graph, self.stop, concurrency=concurrency, spawn=self.spawn)
        self.work = work
        self.refuse_after = refuse_after  # the system refuses threads past this many
        self.lock = threading.Lock()
        self.started = 0
        self.running = 0
        self.most = 0  # workers alive at once, at most
        self.done: list[str] = []
        self.threads: list[threading.Thread] = []

    def spawn(self, n: int) -> int:
        for i in range(n):
            with self.lock:
                if self.refuse_after is not None and self.started >= self.refuse_after:
                    return i
                self.started += 1
            thread = threading.Thread(target=self.worker, daemon=True)
            self.threads.append(thread)
            thread.start()
        return n

    def worker(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            iid = self.scheduler.take()
            while iid is not None:
                time.sleep(self.work)
                with self.lock:
                    self.done.append(iid)
                iid = self.scheduler.finish_and_take(iid, True)
        finally:
            with self.lock:
                self.running -= 1

    def run(self) -> None:
        self.scheduler.start()
        deadline = time.monotonic() + 10
        while any(t.is_alive() for t in list(self.threads)):
            assert time.monotonic() < deadline, "the workers did not finish"
            time.sleep(0.01)


def _until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _order_kept(graph: dict[str, set[str]], done: list[str]) -> None:
    position = {iid: i for i, iid in enumerate(done)}
    assert sorted(done) == sorted(graph)  # each exactly once
    for iid, waits_for in graph.items():
        assert all(position[w] < position[iid] for w in waits_for), iid


def test_a_chain_runs_on_one_worker():
    graph = {f"n{i}": ({f"n{i - 1}"} if i else set()) for i in range(50)}
    pool = Pool(graph, concurrency=10)
    pool.run()
    _order_kept(graph, pool.done)
    assert pool.started == 1


def test_workers_start_as_a_fan_out_releases_work_and_never_exceed_the_concurrency():
    graph = {"root": set(), **{f"leaf{i}": {"root"} for i in range(20)}}
    pool = Pool(graph, concurrency=4, work=0.02)
    pool.run()
    _order_kept(graph, pool.done)
    assert pool.started == 4 and pool.most <= 4  # one for the root, three more once it released the leaves


def test_a_system_that_refuses_threads_leaves_the_run_to_the_workers_it_has():
    graph = {f"n{i}": set() for i in range(30)}
    pool = Pool(graph, concurrency=8, work=0.005, refuse_after=3)
    pool.run()
    _order_kept(graph, pool.done)
    assert pool.started == 3


def test_a_stop_lets_idle_workers_go_even_while_a_retry_is_due_later():
    graph = {"slow": set(), "retried": set(), **{f"n{i}": {"slow"} for i in range(3)}}
    stop = threading.Event()
    scheduler = Scheduler(graph, stop, concurrency=3)
    first, second = scheduler.take(), scheduler.take()
    assert {first, second} == {"slow", "retried"}
    idle = threading.Thread(target=lambda: scheduler.take(), daemon=True)  # waits: nothing ready yet
    idle.start()
    _until(lambda: scheduler._idle == 1)
    scheduler.defer("retried" if second == "retried" else first, 60.0)  # due in a minute
    time.sleep(0.05)
    _until(lambda: scheduler._idle == 1)  # waiting again, now until the retry is due
    stop.set()  # a failure: no new work
    assert scheduler.finish_and_take("slow" if first == "slow" else second, False) is None
    idle.join(timeout=5)
    assert not idle.is_alive(), "an idle worker kept waiting for work that will never come"
