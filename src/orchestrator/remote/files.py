"""The blueprint's files for workers on other hosts (``ctx.get_resource`` and friends).

The CLI packs the blueprint's directory into a tar archive stored in the state under
its digest; a worker unpacks it once into its cache and hands hooks that copy. Hidden
directories (``.git``, ``.orchestrator``, virtualenvs) and anything past the size cap
stay behind: a blueprint directory that is too big is reported, not shipped, and
``get_resource`` on a worker then reads the original path (which works on the CLI's
host only).

Each new blueprint version is a new digest, so the cache would grow for as long as a
worker lives: every use marks a copy as used (its modification time), and an unpack
drops the copies no worker on this host used for ``KEEP_UNUSED`` seconds (and staging
directories a crash left behind). A copy dropped too early is unpacked again.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import tarfile
import tempfile
import time
from pathlib import Path

LIMIT = 64 * 1024 * 1024  # bytes of files shipped with a deployment
MAX_FILES = 10_000
KEEP_UNUSED = 7 * 24 * 3600  # seconds an unpacked blueprint stays after its last use
STAGING_AGE = 3600  # an unpack still staging after this long was stopped half way
STATE_SUFFIXES = ("", "-wal", "-shm", "-journal", ".backup", ".lineage")  # a SQLite state and its companions


def pack(directory: Path, limit: int = LIMIT, state: Path | None = None) -> tuple[str, bytes] | None:
    """(digest, archive) of the files under ``directory`` (never the state's own files);
    None when they exceed ``limit`` bytes or ``MAX_FILES`` files."""
    skip = {Path(f"{state.resolve()}{suffix}") for suffix in STATE_SUFFIXES} if state is not None else set()
    files: list[Path] = []
    total = 0
    for root, dirs, names in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules"))
        for name in sorted(names):
            path = Path(root, name)
            if name.startswith(".") or path.is_symlink() or not path.is_file() or path.resolve() in skip:
                continue
            total += path.stat().st_size
            if total > limit or len(files) >= MAX_FILES:
                return None
            files.append(path)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for path in files:
            info = tar.gettarinfo(str(path), arcname=str(path.relative_to(directory)))
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""  # same files, same digest
            with path.open("rb") as f:
                tar.addfile(info, f)
    data = buffer.getvalue()
    return "files:" + hashlib.sha256(data).hexdigest(), data


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestrator" / "blueprints"


def unpacked(digest: str) -> Path | None:
    """The directory of an archive unpacked before (now marked as used), or None."""
    target = cache_dir() / digest.removeprefix("files:")
    try:
        os.utime(target)
    except OSError:  # not there (or not ours to mark: it is still there to read)
        return target if target.is_dir() else None
    return target


def unpack(digest: str, data: bytes) -> Path:
    """The directory holding the archive's files (unpacked once per digest, atomically)."""
    target = unpacked(digest)
    if target is not None:
        return target
    target = cache_dir() / digest.removeprefix("files:")
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=target.parent))
    with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
        tar.extractall(staging, filter="data")  # no absolute paths, links out, or devices
    try:
        staging.rename(target)
    except OSError:  # another thread or worker unpacked it meanwhile
        shutil.rmtree(staging, ignore_errors=True)
    prune(target.parent, keep=target.name)
    return target


def prune(cache: Path, keep: str = "", now: float | None = None) -> list[str]:
    """Drop the unpacked blueprints unused for ``KEEP_UNUSED`` seconds, and stale staging
    directories; the names dropped."""
    now = time.time() if now is None else now
    dropped = []
    try:
        entries = list(os.scandir(cache))
    except OSError:
        return dropped
    for entry in entries:
        if entry.name == keep:
            continue
        limit = STAGING_AGE if entry.name.startswith(".unpack-") else KEEP_UNUSED
        try:
            stale = entry.is_dir(follow_symlinks=False) and now - entry.stat(follow_symlinks=False).st_mtime > limit
        except OSError:
            continue
        if stale and (entry.name.startswith(".unpack-") or not entry.name.startswith(".")):
            shutil.rmtree(entry.path, ignore_errors=True)
            dropped.append(entry.name)
    return dropped
