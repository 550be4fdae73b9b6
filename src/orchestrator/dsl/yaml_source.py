"""YAML loading: a fast path without positions and a slow path that has them.

The fast path is ``yaml_rs`` (Rust), about 13x faster than PyYAML's C loader. The
slow path parses with PyYAML's composer into ``dict`` and ``list`` subclasses that
carry the marks of their keys and items, so problems are reported as ``FILE:LINE:COL``;
it reads a file whose fast parse failed, or the parts of a file a problem points into
(``locate``). Both paths resolve plain scalars with ``yaml_rs`` (YAML 1.2: ``yes`` is a
string, ``0x1F`` an integer, no timestamps, no ``<<`` merge keys), so a value never
depends on which path read it. Duplicate keys, which PyYAML silently collapses, are
errors in both, and so are breaches of the limits in ``limits`` (depth, aliases,
integer size) and control characters: the fast path declines such text (``yaml_scan``)
and the slow path reports them where they are.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any

import yaml_rs

from orchestrator.dsl.limits import MAX_ALIAS_NODES
from orchestrator.dsl.problems import NOWHERE, AnyMark, Mark, Pending, Problems, pending
from orchestrator.dsl.yaml_scan import fast_path_allowed, within_limits


class YDict(dict):
    """A mapping that knows the marks of its keys and values and its own start."""

    __slots__ = ("key_marks", "mark", "value_marks")

    def __init__(self) -> None:
        super().__init__()
        self.mark: Mark = NOWHERE
        self.key_marks: dict[Any, Mark] = {}
        self.value_marks: dict[Any, Mark] = {}


class YList(list):
    """A sequence that knows the marks of its items and its own start."""

    __slots__ = ("item_marks", "mark")

    def __init__(self) -> None:
        super().__init__()
        self.mark: Mark = NOWHERE
        self.item_marks: list[Mark] = []


def mark_of(container: Any, key: Any = None, *, value: bool = True) -> AnyMark:
    """The position of ``container[key]`` (its value, or its key with ``value=False``).

    Pending for a plain container (the fast path's): see ``Pending``.
    """
    cls = container.__class__
    if cls is dict or cls is list:
        return pending(container, key, "self" if key is None else "value" if value else "key", NOWHERE)
    if cls is YDict:
        if key is None:
            return container.mark
        return (container.value_marks if value else container.key_marks).get(key, container.mark)
    if cls is YList:
        if isinstance(key, int) and key < len(container.item_marks):
            return container.item_marks[key]
        return container.mark
    return getattr(container, "mark", NOWHERE)


def key_mark(container: Any, key: Any) -> AnyMark:
    return mark_of(container, key, value=False)


def child_mark(container: Any, key: Any, fallback: AnyMark, *, value: bool = True) -> AnyMark:
    """Like ``mark_of``, but ``fallback`` (the parent's mark) where the container has no marks."""
    cls = container.__class__
    if cls is dict or cls is list:
        return pending(container, key, "value" if value else "key", fallback)
    if cls is YDict or cls is YList:
        return mark_of(container, key, value=value)
    return fallback


class PendingMarks:
    """``key_marks``/``value_marks``/``item_marks`` of a ``YDict``/``YList`` copied from a
    plain container: each mark is looked up in the original when asked (see ``Pending``)."""

    __slots__ = ("fallback", "kind", "source")

    def __init__(self, source: dict | list, kind: str, fallback: AnyMark) -> None:
        self.source, self.kind, self.fallback = source, kind, fallback

    def get(self, key: Any, default: Any = None) -> Any:
        return pending(self.source, key, self.kind, self.fallback) if key in self.source else default

    def __len__(self) -> int:
        return len(self.source)

    def __getitem__(self, index: int) -> Pending:
        return pending(self.source, index, self.kind, self.fallback)


class SourceMarks:
    """``key_marks``/``value_marks`` of a mapping merged from several files' mappings:
    each entry's mark is taken from the mapping it came from, when asked."""

    __slots__ = ("sources", "value")

    def __init__(self, sources: dict[Any, Any], value: bool) -> None:
        self.sources, self.value = sources, value

    def get(self, key: Any, default: Any = None) -> Any:
        source = self.sources.get(key)
        return default if source is None else mark_of(source, key, value=self.value)

    def __getitem__(self, key: Any) -> AnyMark:
        return mark_of(self.sources[key], key, value=self.value)


def merged_mapping() -> YDict:
    """An empty ``YDict`` to merge mappings into: add an entry as ``d[k] = v`` and
    ``d.key_marks.sources[k] = the mapping it comes from``."""
    d = YDict()
    sources: dict[Any, Any] = {}
    d.key_marks, d.value_marks = SourceMarks(sources, False), SourceMarks(sources, True)  # type: ignore[assignment]
    return d


def marked_copy(value: dict | list, mark: AnyMark) -> YDict | YList:
    """An empty ``YDict``/``YList`` whose marks are those of ``value``'s entries.

    For a copy that resolves functions in ``value``: problems found later in the copy
    point where they are written. ``mark`` is where ``value`` itself is.
    """
    if isinstance(value, YDict):
        d = YDict()
        d.mark, d.key_marks, d.value_marks = value.mark, value.key_marks, value.value_marks
        return d
    if isinstance(value, YList):
        items = YList()
        items.mark, items.item_marks = value.mark, value.item_marks
        return items
    if isinstance(value, dict):
        d = YDict()
        d.mark = pending(value, None, "self", mark)
        d.key_marks = PendingMarks(value, "key", mark)  # type: ignore[assignment]
        d.value_marks = PendingMarks(value, "value", mark)  # type: ignore[assignment]
        return d
    items = YList()
    items.mark = pending(value, None, "self", mark)
    items.item_marks = PendingMarks(value, "value", mark)  # type: ignore[assignment]
    return items


SCALAR_TYPES = frozenset((str, int, float, bool, type(None)))
"""The classes of a YAML (and JSON) scalar: a value of one holds nothing to look into."""

PLAIN_TAG = "tag:orchestrator,2026:plain"


@functools.lru_cache(maxsize=4096)
def plain_scalar(text: str) -> Any:
    """The value of a plain (unquoted) scalar, exactly as the fast path reads it."""
    try:
        return yaml_rs.loads(f"v: {text}", parse_datetime=False)["v"]
    except (yaml_rs.YAMLDecodeError, TypeError, KeyError):
        return text


_LINE_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def position(text: str, index: int) -> tuple[int, int]:
    """1-based ``(line, column)`` of ``text[index]``, counting line breaks as PyYAML does."""
    line, start = 1, 0
    for m in _LINE_BREAKS.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1


_FAST_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=MAX_ALIAS_NODES)


def parse_yaml(text: str, filename: str, problems: Problems, line_offset: int = 0) -> Any:
    """Parse one YAML document with positions (``yaml_marked``); syntax errors become problems.

    PyYAML loads here, on the slow path only: a clean blueprint never imports it.
    """
    from orchestrator.dsl.yaml_marked import parse_marked

    return parse_marked(text, filename, problems, line_offset)


def parse_yaml_fast(text: str) -> tuple[bool, Any]:
    """``(True, value)`` when the fast parser reads the text cleanly, else ``(False, None)``.

    ``False`` too for text the fast parser must not be handed or whose value breaks a
    limit (see ``yaml_scan``): the slow path then says what and where. yaml_rs's own
    alias limit is a second guard (it counts replayed events at least as high as
    ``check_aliases`` counts nodes).
    """
    allowed = fast_path_allowed(text)
    if allowed is False:
        return False, None
    try:
        value = yaml_rs.loads(text, parse_datetime=False, alias_limits=_FAST_ALIAS_LIMITS)
    except (yaml_rs.YAMLDecodeError, ValueError, TypeError):
        return False, None
    return (True, value) if within_limits(value, numbers=allowed is None) else (False, None)


def read_text(path: Path, display: str, problems: Problems) -> str | None:
    """The file's text; an unreadable file, or bytes that are not UTF-8 (where they start), is a problem."""
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(Mark(display, 1, 1), f"cannot read file: {exc.strerror or exc}")
    except UnicodeDecodeError as exc:
        data: bytes = exc.object  # type: ignore[assignment]
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        problems.add(Mark(display, data.count(b"\n", 0, exc.start) + 1, column),
                     f"file is not UTF-8 text: {exc.reason}")
    return None


def read_yaml_file(path: Path, display: str, problems: Problems, *, fast: bool = False,
                   documents: list | None = None) -> Any:
    """Read a YAML file; with ``fast=True`` positions are not kept (see module doc).

    ``documents`` gets ``(display, text, value)`` of a file read fast, to settle marks later.
    """
    text = read_text(path, display, problems)
    if text is None:
        return None
    if fast:
        ok, value = parse_yaml_fast(text)
        if ok:
            if documents is not None:
                documents.append((display, text, value))
            return value
        problems.add(Mark(display, 0, 0), "not valid YAML")  # the slow path says where
        problems.inexact = True
        return None
    return parse_yaml(text, display, problems)
