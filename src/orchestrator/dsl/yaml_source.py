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

import yaml
import yaml_rs

from orchestrator.dsl.limits import MAX_ALIAS_NODES, MAX_DEPTH, MAX_INT_DIGITS
from orchestrator.dsl.problems import NOWHERE, AnyMark, Mark, Pending, Problems, pending, shown
from orchestrator.dsl.yaml_scan import (
    NON_PRINTABLE,
    check_aliases,
    fast_path_allowed,
    too_deep_at,
    too_large,
    within_limits,
)

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


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


PLAIN_TAG = "tag:orchestrator,2026:plain"


@functools.lru_cache(maxsize=4096)
def plain_scalar(text: str) -> Any:
    """The value of a plain (unquoted) scalar, exactly as the fast path reads it."""
    try:
        return yaml_rs.loads(f"v: {text}", parse_datetime=False)["v"]
    except (yaml_rs.YAMLDecodeError, TypeError, KeyError):
        return text


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    def __init__(self, stream: str, filename: str, problems: Problems, line_offset: int = 0) -> None:
        super().__init__(stream)
        self.filename = filename
        self.problems = problems
        self.line_offset = line_offset
        self.depth = 0

    def resolve(self, kind: type, value: str, implicit: tuple[bool, bool]) -> str:
        if kind is yaml.ScalarNode and implicit[0]:
            return PLAIN_TAG
        return super().resolve(kind, value, implicit)

    def mark(self, node: yaml.Node) -> Mark:
        m = node.start_mark
        return Mark(self.filename, m.line + 1 + self.line_offset, m.column + 1)

    def too_deep(self, node: yaml.Node) -> bool:
        """Report a collection nested deeper than MAX_DEPTH (its contents are not read)."""
        if self.depth < MAX_DEPTH:
            return False
        self.problems.add(self.mark(node), f"YAML nesting deeper than {MAX_DEPTH} levels")
        return True


def _construct_plain(loader: _Loader, node: yaml.ScalarNode) -> Any:
    value = plain_scalar(node.value)
    if too_large(value):
        loader.problems.add(loader.mark(node), f"integer too large: more than {MAX_INT_DIGITS} digits")
        return None
    return value


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YDict:
    result = YDict()
    result.mark = loader.mark(node)
    if loader.too_deep(node):
        return result
    loader.depth += 1
    try:
        _fill_mapping(loader, node, result)
    finally:
        loader.depth -= 1
    return result


def _fill_mapping(loader: _Loader, node: yaml.MappingNode, result: YDict) -> None:
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        kmark = loader.mark(key_node)
        try:
            seen = key in result
        except TypeError:
            loader.problems.add(kmark, "a mapping key must be a scalar")
            continue
        if seen:
            first = result.key_marks[key]
            loader.problems.add(
                kmark, f"duplicate key '{shown(key)}' (first defined at line {first.line})"
            )
        result[key] = loader.construct_object(value_node, deep=True)
        result.key_marks[key] = kmark
        result.value_marks[key] = loader.mark(value_node)


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> YList:
    result = YList()
    result.mark = loader.mark(node)
    if loader.too_deep(node):
        return result
    loader.depth += 1
    try:
        for child in node.value:
            result.append(loader.construct_object(child, deep=True))
            result.item_marks.append(loader.mark(child))
    finally:
        loader.depth -= 1
    return result


_Loader.add_constructor(PLAIN_TAG, _construct_plain)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def parse_yaml(text: str, filename: str, problems: Problems, line_offset: int = 0) -> Any:
    """Parse one YAML document; syntax errors become problems and the result ``None``.

    ``line_offset`` is added to every line: ``text`` is a part of a file starting there.
    """
    bad = NON_PRINTABLE.search(text)
    if bad is not None:
        line, column = position(text, bad.start())
        problems.add(Mark(filename, line + line_offset, column),
                     f"YAML syntax error: control character U+{ord(bad.group()):04X} is not allowed")
        return None
    if not check_aliases(text, filename, problems, line_offset):
        return None
    loader = _Loader(text, filename, problems, line_offset)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as exc:
        m = exc.problem_mark or exc.context_mark
        where = (m.line, m.column) if m else (0, 0)
        if exc.problem == "exceeded maximum nesting depth":  # libyaml's own limit (1,000)
            where = too_deep_at(text) or where
            message = f"YAML nesting deeper than {MAX_DEPTH} levels"
        else:
            message = f"YAML syntax error: {_syntax_message(exc, text)}"
        problems.add(Mark(filename, where[0] + 1 + line_offset, where[1] + 1), message)
    except yaml.YAMLError as exc:
        problems.add(Mark(filename, 1 + line_offset, 1), f"YAML error: {exc}")
    except RecursionError:  # only without libyaml, whose parser stops at 1,000 levels
        problems.add(Mark(filename, 1 + line_offset, 1), f"YAML nesting deeper than {MAX_DEPTH} levels")
    finally:
        loader.dispose()
    return None


_LINE_BREAKS = re.compile("\r\n|[\n\r\x85\u2028\u2029]")


def position(text: str, index: int) -> tuple[int, int]:
    """1-based ``(line, column)`` of ``text[index]``, counting line breaks as PyYAML does."""
    line, start = 1, 0
    for m in _LINE_BREAKS.finditer(text, 0, index):
        line, start = line + 1, m.end()
    return line, index - start + 1


def _syntax_message(exc: yaml.MarkedYAMLError, text: str) -> str:
    """PyYAML's problem plus where the construct it was reading started."""
    problem, context = exc.problem or "", exc.context or ""
    pm, cm = exc.problem_mark, exc.context_mark
    if pm is not None and text[pm.index:pm.index + 1] == "\t":
        return "a tab character cannot be used here (YAML indents with spaces)"
    if not problem:
        return context or "invalid YAML"
    if problem.startswith("but ") and context:  # "expected a single document ..., but found ..."
        return f"{context}, {problem}"
    if context.startswith(("while parsing ", "while scanning ")) and cm is not None and (
        pm is None or (cm.line, cm.column) != (pm.line, pm.column)
    ):
        noun = context.split(" ", 2)[2]
        return f"{problem} (in {noun} starting at line {cm.line + 1}, column {cm.column + 1})"
    return problem


_FAST_ALIAS_LIMITS = yaml_rs.AliasLimits(max_total_replayed_events=MAX_ALIAS_NODES)


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


def read_yaml_file(path: Path, display: str, problems: Problems, *, fast: bool = False,
                   documents: list | None = None) -> Any:
    """Read a YAML file; with ``fast=True`` positions are not kept (see module doc).

    ``documents`` gets ``(display, text, value)`` of a file read fast, to settle marks later.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        problems.add(Mark(display, 1, 1), f"cannot read file: {exc.strerror or exc}")
        return None
    except UnicodeDecodeError as exc:
        data: bytes = exc.object  # type: ignore[assignment]
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1
        problems.add(Mark(display, data.count(b"\n", 0, exc.start) + 1, column),
                     f"file is not UTF-8 text: {exc.reason}")
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
