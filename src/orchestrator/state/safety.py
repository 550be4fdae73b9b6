"""What protects a state file from being lost unnoticed: a lineage file and a backup.

``STATE.lineage`` records the state's identity (a random id kept in the database) and
the deployments it holds. A state file that was truncated to nothing, replaced by
another, or lost deployments it had no longer matches it, and is refused instead of
being read as empty (which would make ``install`` create everything again).

``STATE.backup`` is a copy of the state taken when each execution starts (before it
writes anything, after its lock is taken), like Terraform's ``.backup``. ``--state-recover``
puts it back, keeping the damaged file aside.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from orchestrator.errors import StateError


def lineage_path(state: Path) -> Path:
    return state.with_name(state.name + ".lineage")


def backup_path(state: Path) -> Path:
    return state.with_name(state.name + ".backup")


@dataclass(frozen=True)
class Lineage:
    id: str
    deployments: frozenset[str]


def read_lineage(state: Path) -> Lineage | None:
    """The lineage beside ``state``; None when there is none (or it is unreadable)."""
    try:
        data = json.loads(lineage_path(state).read_text(encoding="utf-8"))
        return Lineage(str(data["lineage"]), frozenset(map(str, data["deployments"])))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lineage_stamp(state: Path) -> tuple[int, int, int] | None:
    """Which lineage file is there now (each write replaces it: a new inode): whether another
    process replaced it while this one was reading the state."""
    try:
        st = lineage_path(state).stat()
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


def durable() -> bool:
    """``ORCHESTRATOR_SYNC=FULL``: survive a power cut, at the price of an fsync per write.

    Otherwise, like the state itself (``synchronous=NORMAL``), these files survive a
    killed process but not a power cut; a lineage file lost that way protects nothing
    until the next write, and never refuses a good state.
    """
    return os.environ.get("ORCHESTRATOR_SYNC", "NORMAL").upper() == "FULL"


def _fsync(fd: int) -> None:
    if durable():
        os.fsync(fd)


def write_lineage(state: Path, lineage: Lineage) -> None:
    """Replace the lineage file atomically (written, renamed), mode 0600."""
    target = lineage_path(state)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    data = json.dumps({"lineage": lineage.id, "deployments": sorted(lineage.deployments),
                       "written_at": time.time()}, indent=1)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data.encode())
        _fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, target)


def lineage_problem(lineage: Lineage | None, db_lineage: str | None, deployments: set[str]) -> str | None:
    """What is wrong with a state whose lineage file says ``lineage``; None when it matches.

    Only a lineage that held deployments can be violated: losing a state that held
    none loses nothing.
    """
    if lineage is None or not lineage.deployments:
        return None
    if db_lineage is None:
        return f"it is empty, but it held deployments ({_names(lineage.deployments)})"
    if db_lineage != lineage.id:
        return f"it was replaced by another state file; the one in use held deployments ({_names(lineage.deployments)})"
    lost = lineage.deployments - deployments
    if lost:
        return f"it lost deployments it had ({_names(lost)})"
    return None


def _names(names: frozenset[str] | set[str]) -> str:
    shown = sorted(names)
    return ", ".join(shown[:5]) + (f" and {len(shown) - 5} more" if len(shown) > 5 else "")


def take_backup(state: Path) -> None:
    """Copy the last committed state to ``STATE.backup`` (atomically; the old one survives a failure).

    It reads through a connection of its own: the caller may hold the write lock (WAL
    readers see the last commit), and SQLite refuses to back up from a connection that
    is writing.
    """
    target = backup_path(state)
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600))
    try:
        source = sqlite3.connect(f"file:{quote(str(state.resolve()))}?mode=ro", uri=True)
        dest = sqlite3.connect(tmp, isolation_level=None)
        try:
            dest.execute("PRAGMA journal_mode=OFF")  # a scratch file until renamed: no journal, no syncs
            dest.execute("PRAGMA synchronous=OFF")
            source.backup(dest)
        finally:
            dest.close()
            source.close()
        if durable():
            fd = os.open(tmp, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def passes_quick_check(path: Path, *, immutable: bool = False) -> bool:
    """SQLite's own check of a file, read only (``immutable``: a copy no process writes, so no
    write-ahead log either); False when it fails or the file cannot be read as a database."""
    try:
        check = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro{'&immutable=1' if immutable else ''}",
                                uri=True)
        try:
            return check.execute("PRAGMA quick_check").fetchone()[0] == "ok"
        finally:
            check.close()
    except sqlite3.Error:
        return False


def restore_backup(state: Path) -> str:
    """Put ``STATE.backup`` in place of ``state``; the damaged files are kept as ``STATE.damaged-*``.

    Returns a sentence saying what was done. The backup is checked first: a damaged
    backup is refused and nothing is moved.
    """
    backup = backup_path(state)
    if not backup.is_file():
        raise StateError(f"there is no backup of {state} to recover from ({backup} does not exist)")
    if not passes_quick_check(backup, immutable=True):
        raise StateError(f"the backup {backup} is damaged too; nothing was changed")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    kept = state.with_name(f"{state.name}.damaged-{stamp}")
    for suffix in ("", "-wal", "-shm"):
        src = state.with_name(state.name + suffix)
        if src.exists():
            os.replace(src, kept.with_name(kept.name + suffix))
    tmp = state.with_name(state.name + f".tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, backup.read_bytes())
        os.fsync(fd)  # a recovery is rare and must hold
    finally:
        os.close(fd)
    os.replace(tmp, state)
    return (f"restored {state} from {backup} (the state as it was when its last execution started); "
            f"the damaged file is kept as {kept}")
