"""The ``orchestrator.plugins`` entry points of this environment, remembered between commands.

``importlib.metadata`` answers by reading every installed distribution, and importing it
(``email``, ``zipfile``, ``csv``...) costs more than the rest of plugin discovery: about a
fifth of a command's start-up. So the answer is kept in a small JSON file per environment
(``~/.cache/orchestrator/``, or ``$XDG_CACHE_HOME``), valid while no directory on
``sys.path`` changed: installing, upgrading or removing a distribution (editable ones too)
adds or removes a ``*.dist-info`` folder, which changes its directory's modification time,
and the next command reads ``importlib.metadata`` again. ``ORCHESTRATOR_PLUGIN_CACHE=0``
turns the file off. A file that cannot be read or written is ignored: the cache only
ever saves time.
"""

from __future__ import annotations

import functools
import hashlib
import importlib
import json
import os
import re
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator import DISTRIBUTION, ENTRY_POINT_GROUP

FORMAT = 1
# importlib.metadata's own pattern for an entry point's value: "module[:attr.attr] [extras]"
_VALUE = re.compile(r"(?P<module>[\w.]+)\s*(:\s*(?P<attr>[\w.]+)\s*)?((?P<extras>\[.*\])\s*)?$")


class Found(NamedTuple):
    """One entry point of the group, with the distribution that declares it."""

    name: str
    value: str
    dist: str | None
    version: str | None

    def load(self) -> Any:
        """What ``importlib.metadata.EntryPoint.load`` returns, without importing importlib.metadata."""
        match = _VALUE.match(self.value)
        if match is None:
            raise ValueError(f"'{self.value}' is not MODULE or MODULE:ATTRIBUTE")
        module = importlib.import_module(match.group("module"))
        attrs = filter(None, (match.group("attr") or "").split("."))
        return functools.reduce(getattr, attrs, module)


class Index(NamedTuple):
    entries: list[Found]
    core_version: str | None  # the version of the core's distribution (the built-in plugin's)
    files: Sequence[tuple[str, int]] = ()  # each declaring distribution's entry_points.txt and its mtime


def plugin_entry_points(env: Mapping[str, str] | None = None) -> Index:
    """The group's entry points, sorted by name: from the cache file while it is valid."""
    env = os.environ if env is None else env
    if env.get("ORCHESTRATOR_PLUGIN_CACHE", "1") in ("0", "false", "no", "off"):
        return scan()
    key = _fingerprint()  # taken before reading: an install while we read changes it
    path = _cache_file()
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if data.get("format") == FORMAT and data.get("key") == key and all(
                _mtime(file) == stamp for file, stamp in data["files"]):
            return Index([Found(*e) for e in data["entries"]], data["core_version"],
                         [tuple(f) for f in data["files"]])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # missing, damaged, another format
        pass
    index = scan()
    _write(path, {"format": FORMAT, "key": key, "entries": [list(e) for e in index.entries],
                  "core_version": index.core_version, "files": [list(f) for f in index.files]})
    return index


def scan() -> Index:
    """Ask ``importlib.metadata`` (reads every installed distribution)."""
    import importlib.metadata as md

    names: dict[int, tuple[str | None, str | None]] = {}  # a distribution's METADATA is parsed once
    entries, files = [], {}
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        if dist is not None and id(dist) not in names:
            names[id(dist)] = (dist.name, dist.version)
            folder = getattr(dist, "_path", None)  # a dist-info folder (an edit inside it keeps sys.path's mtimes)
            if folder is not None:
                file = os.path.join(str(folder), "entry_points.txt")
                files[file] = _mtime(file)
        name, version = names[id(dist)] if dist is not None else (None, None)
        entries.append(Found(ep.name, ep.value, name, version))
    try:
        core = md.version(DISTRIBUTION)
    except md.PackageNotFoundError:
        core = None
    return Index(entries, core, sorted(files.items()))


def _mtime(path: str) -> int:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return -1


def _fingerprint() -> str:
    """What the answer depends on: the interpreter, ``sys.path`` and each entry's modification time."""
    parts = [sys.executable]
    for entry in sys.path:
        where = entry or os.getcwd()  # "" is the current directory (python -m, -c)
        try:
            stamp = os.stat(where).st_mtime_ns
        except OSError:
            stamp = -1
        parts.append(f"{where}\0{stamp}")
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    where = hashlib.sha256(f"{sys.executable}\0{sys.prefix}".encode("utf-8", "surrogateescape")).hexdigest()[:16]
    return Path(base) / "orchestrator" / f"entry-points-{where}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically (a reader sees the old file or the new one); any failure leaves no cache."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".entry-points-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(data, fh)
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise
    except OSError:
        pass
