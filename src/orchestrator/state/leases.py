"""Deployment locks as leases: who may take a lock over, and a thread that keeps one alive.

A lock names its holder (pid, host, the kernel's start time of that pid) and an expiry.
The holder renews the lease while it runs. Another process takes the lock over when
the lease has expired, whatever host the holder was on (a container, a CI runner that
vanished), or at once when the holder ran on this host and its process is gone.

A host is named by ``ORCHESTRATOR_HOST_ID`` when set, else by its host name: containers
that share a host name but not a process table must set distinct ids (and tests use it
to play several hosts on one machine).
"""

from __future__ import annotations

import os
import platform
import threading
from collections.abc import Callable
from dataclasses import dataclass

from orchestrator.settings import positive_seconds
from orchestrator.state.records import LockInfo

DEFAULT_LEASE = 60.0  # seconds; renewed every third of it


def lease_seconds() -> float:
    """The lease length: ``ORCHESTRATOR_LOCK_LEASE`` seconds, else 60."""
    return positive_seconds("ORCHESTRATOR_LOCK_LEASE", DEFAULT_LEASE)


@dataclass(frozen=True)
class Holder:
    pid: int
    host: str
    proc_start: str

    @classmethod
    def current(cls) -> Holder:
        pid = os.getpid()
        return cls(pid, host_id(), proc_start(pid))


def host_id() -> str:
    """This host's name in locks: ``ORCHESTRATOR_HOST_ID``, else the host name. A lock of
    another host is never judged by its pid (that pid means nothing here): only its lease."""
    return os.environ.get("ORCHESTRATOR_HOST_ID") or platform.node()  # (socket.gethostname(), without socket)


def proc_start(pid: int) -> str:
    """The kernel's start time of a process: tells a live lock holder from a reused pid."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def _alive(pid: int, start: str) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return not start or proc_start(pid) in ("", start)


def holder_gone(lock: LockInfo, me: Holder) -> bool:
    """True when the holder ran on this host and its process no longer exists."""
    return lock.host == me.host and not _alive(lock.pid, lock.proc_start)


def why_free(lock: LockInfo, me: Holder, now: float) -> str | None:
    """Why ``lock`` may be taken over now ("its process is gone", ...), or None while it holds."""
    if holder_gone(lock, me):
        return f"pid {lock.pid} on {lock.host} is not running"
    if lock.expires_at <= now:
        return f"its lease expired {_ago(now - lock.expires_at)} ago"
    return None


def _ago(seconds: float) -> str:
    return f"{seconds:.0f}s" if seconds < 120 else f"{seconds / 60:.0f} min"


def busy_message(lock: LockInfo, now: float, unlocking: bool = False) -> str:
    lease = f"its lease is live (renewed while it runs; expires in {_ago(max(0.0, lock.expires_at - now))})"
    if unlocking:
        return (f"not unlocking deployment '{lock.deployment}': it is locked by {lock.describe()}, and {lease}. "
                f"If that process is gone for good, wait for the lease to expire, or use --force")
    return (f"deployment '{lock.deployment}' is busy: {lock.describe()}; {lease}. If that process is gone "
            f"for good, wait for the lease to expire or run 'orchestrator unlock -d {lock.deployment}'")


class LeaseKeeper:
    """Renews an execution's lease every third of its length until stopped.

    ``renew()`` returns False once the lock is no longer this execution's; the keeper
    then calls ``on_lost`` once and stops. A failed write (disk full) is retried at the
    next tick: the lease is long enough to survive a few.
    """

    def __init__(self, renew: Callable[[], bool], lease: float, on_lost: Callable[[str], None]) -> None:
        self._renew = renew
        self._interval = lease / 3
        self._on_lost = on_lost
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        from orchestrator.errors import StateError

        while not self._stopped.wait(self._interval):
            try:
                if not self._renew():
                    self._on_lost("its lock was taken over or cleared (unlock --force) while it ran")
                    return
            except StateError:
                continue
