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

The same file keeps what each plugin that loaded cleanly declared (its ``register_types``
answer, the hooks it implements, its warnings: ``Facts``), stamped with its code's files,
so a command that only plans need not import the plugins at all (``plugins.py``). Editing,
adding or removing any file of the plugin's top-level package changes the stamp.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import sys
import time
import zlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator import DISTRIBUTION, ENTRY_POINT_GROUP

FORMAT = 2
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
    facts: Mapping[str, Mapping[str, Any]] = {}  # entry point name -> its Facts, as remembered (maybe stale)
    key: str | None = None  # the fingerprint it was read or scanned under (None: not to be remembered)
    checked: str | None = None  # types_digest() of the last set of plugin types found to resolve cleanly


class Facts(NamedTuple):
    """What a plugin that loaded cleanly declared, enough to plan without importing it."""

    value: str  # the entry point's value it was loaded from
    version: str | None
    code: str  # the file or package folder its code is in
    stamp: str | None  # code_stamp(code) when it was loaded
    types: Any  # register_types' answer: a JSON mapping or YAML text
    hooks: list[str]  # hooks it implements (not as a wrapper)
    wrappers: list[str]
    warnings: list[str]  # non-fatal load errors it got

    @classmethod
    def valid(cls, found: Found, raw: Any) -> Facts | None:
        """The remembered facts of ``found`` if they still describe its code, else None."""
        try:
            facts = cls(**raw)
        except TypeError:
            return None
        if (facts.value, facts.version) != (found.value, found.version) or facts.stamp is None or \
                code_stamp(facts.code) != facts.stamp:
            return None
        return facts


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
            facts = data.get("facts")
            return Index([Found(*e) for e in data["entries"]], data["core_version"],
                         [tuple(f) for f in data["files"]], facts if isinstance(facts, dict) else {}, key,
                         data.get("checked"))
    except (OSError, ValueError, TypeError, KeyError, AttributeError):  # missing, damaged, another format
        pass
    index = scan()._replace(key=key)
    _write(path, _data(index))
    return index


def remember(index: Index, learned: Mapping[str, Facts], checked: str | None) -> None:
    """Add what plugins loaded this time declared, and the digest of types that resolved, to the file."""
    if index.key is None or (not learned and checked in (None, index.checked)):
        return
    facts = {**index.facts, **{name: f._asdict() for name, f in learned.items()}}
    _write(_cache_file(), _data(index._replace(facts=facts, checked=checked or index.checked)))


def types_digest(answers: Sequence[tuple[str | None, Any]]) -> str | None:
    """A digest of every plugin's ``register_types`` answer, in order; None if one is not JSON."""
    try:
        text = json.dumps(answers, sort_keys=True, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None
    return f"{len(text)}:{zlib.crc32(text.encode('utf-8', 'surrogateescape')):08x}"


MAX_STAMPED_FILES = 2_000  # a plugin inside a bigger package is not worth stamping: it is imported


@functools.cache  # entry points of one distribution share a folder: walk it once
def code_stamp(code: str) -> str | None:
    """The names, sizes and modification times of a module file or of every file in a package folder.

    None when there is nothing to stamp (gone, in a zip file, too big): such code is never deferred.
    """
    lines: list[str] = []
    try:
        if not os.path.isdir(code):
            info = os.stat(code)
            return f"1:{info.st_size}:{info.st_mtime_ns}"
        _stamp_lines(code, "", lines)
    except (OSError, _TooMany):
        return None
    lines.sort()
    return f"{len(lines)}:{zlib.crc32(chr(10).join(lines).encode('utf-8', 'surrogateescape')):08x}"


class _TooMany(Exception):
    pass


def _stamp_lines(folder: str, prefix: str, lines: list[str]) -> None:
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                if entry.name != "__pycache__" and not entry.name.startswith("."):
                    _stamp_lines(entry.path, f"{prefix}{entry.name}/", lines)
            else:
                info = entry.stat()
                lines.append(f"{prefix}{entry.name}\0{info.st_size}\0{info.st_mtime_ns}")
                if len(lines) > MAX_STAMPED_FILES:
                    raise _TooMany


def code_of(value: str) -> str | None:
    """The file or folder holding the code an entry point ``value`` loaded: its top-level package's.

    None when that is not known (not imported, a namespace package spread over folders).
    """
    match = _VALUE.match(value)
    top = sys.modules.get(match.group("module").partition(".")[0]) if match else None
    paths = list(getattr(top, "__path__", None) or ())
    if len(paths) == 1:
        return str(paths[0])
    file = getattr(top, "__file__", None)
    return str(file) if file and not paths else None


def _data(index: Index) -> dict[str, Any]:
    return {"format": FORMAT, "key": index.key, "entries": [list(e) for e in index.entries],
            "core_version": index.core_version, "files": [list(f) for f in index.files], "facts": dict(index.facts),
            "checked": index.checked}


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
    return "\n".join(parts)


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    where = zlib.crc32(f"{sys.executable}\0{sys.prefix}".encode("utf-8", "surrogateescape"))
    return Path(base) / "orchestrator" / f"entry-points-{where:08x}.json"


def _write(path: Path, data: dict[str, Any]) -> None:
    """Atomically (a reader sees the old file or the new one); any failure leaves no cache."""
    import tempfile  # only when writing: importing it costs more than reading the file

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
    except (OSError, TypeError, ValueError):  # a full disk, a read-only home, a value JSON cannot hold
        return
    _prune(path)


CACHE_KEPT = 30 * 24 * 3600
"""Seconds another interpreter's cache file stays unwritten before a write here drops it: each
virtualenv ever used leaves one (test and tox environments come and go). A live environment's
file dropped this way costs one scan."""


def _prune(path: Path) -> None:
    now = time.time()
    try:
        entries = list(os.scandir(path.parent))
    except OSError:
        return
    for entry in entries:
        name = entry.name
        if name == path.name or not name.endswith((".json", ".tmp")) or \
                not name.startswith(("entry-points-", ".entry-points-")):
            continue
        try:
            if now - entry.stat().st_mtime > (CACHE_KEPT if name.endswith(".json") else 3600):
                os.unlink(entry.path)
        except OSError:
            pass
