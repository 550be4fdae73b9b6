"""Settling pending marks: positions for the few problems of a pass over fast-parsed files.

Reading 5 MB of YAML with positions (PyYAML) takes ten times as long as without
(yaml_rs), and validating again takes as long as the first time. So problems found in
the fast pass keep ``Pending`` marks (a container and a key), and only those are
looked up: the container's path is found in the parsed value, the text of the block
mapping entry holding it is found by a line scan, and just that entry is read with
positions. A found entry is used only when its value equals the fast parser's; else
the next larger entry is tried, then the whole file. A 50,000-node blueprint with one
problem costs a few percent more than a valid one, not twice as much.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from orchestrator.dsl.problems import AnyMark, Mark, Pending, Problem, Problems
from orchestrator.dsl.yaml_source import YDict, YList, mark_of, parse_yaml, plain_scalar

Document = tuple[str, str, Any]  # (display name, text, value as the fast parser read it)
Path_ = tuple[Any, ...]

WHOLE_FILE_BELOW = 64 * 1024  # characters: smaller files are simply read again with positions


def settle(problems: Sequence[Problem], documents: Sequence[Document]) -> list[Problem] | None:
    """The problems with every pending mark looked up; ``None`` when one cannot be stated exactly."""
    pending = [p.mark for p in problems if isinstance(p.mark, Pending)]
    if not pending:
        return list(problems)
    finder = _Finder(documents)
    for mark in pending:
        while isinstance(mark, Pending):
            finder.want(mark.container)
            mark = mark.fallback
    finder.search()
    result = []
    for p in problems:
        mark = finder.settle(p.mark) if isinstance(p.mark, Pending) else p.mark
        if mark is None:
            return None
        result.append(Problem(mark, p.message))
    return result


class _Finder:
    def __init__(self, documents: Sequence[Document]) -> None:
        self.documents = documents
        self.wanted: dict[int, Any] = {}
        self.paths: dict[int, tuple[int, Path_]] = {}  # id(container) -> (document, path)
        self.positioned: dict[tuple[int, Path_], tuple[Any, Any] | None] = {}
        self.whole: dict[int, Any] = {}

    def want(self, container: Any) -> None:
        self.wanted[id(container)] = container

    def search(self) -> None:
        """Find the path of every wanted container in the documents (first found wins)."""
        left = set(self.wanted)
        for n, (_, _, root) in enumerate(self.documents):
            if not left:
                return
            if id(root) in left:
                self.paths[id(root)] = (n, ())
                left.discard(id(root))
            stack: list[tuple[Any, Path_]] = [(root, ())] if isinstance(root, (dict, list)) else []
            while stack and left:
                container, path = stack.pop()
                for key, value in (container.items() if isinstance(container, dict) else enumerate(container)):
                    if isinstance(value, (dict, list)):
                        child = (*path, key)
                        if id(value) in left and value is self.wanted[id(value)]:
                            self.paths[id(value)] = (n, child)
                            left.discard(id(value))
                        stack.append((value, child))

    def settle(self, mark: AnyMark) -> Mark | None:
        while isinstance(mark, Pending):
            found = self.paths.get(id(mark.container))
            if found is None:
                mark = mark.fallback
                continue
            n, path = found
            container, key = mark.container, mark.key
            if mark.kind != "self" and isinstance(container, dict) and key in container:
                holder = self._holder(n, (*path, key))  # a positioned mapping holding key
                return None if holder is None else mark_of(holder, key, value=mark.kind == "value")
            node = self._node(n, path)
            if not isinstance(node, (YDict, YList)):
                return None
            return mark_of(node, key) if mark.kind != "self" and isinstance(node, YList) else node.mark
        return mark

    # -- positioned nodes ---------------------------------------------------------

    def _node(self, n: int, path: Path_) -> Any:
        found = self._positioned(n, path)
        return None if found is None else found[1]

    def _holder(self, n: int, path: Path_) -> Any:
        found = self._positioned(n, path)
        return None if found is None else found[0]

    def _positioned(self, n: int, path: Path_) -> tuple[Any, Any] | None:
        """``(holder, node)``: the positioned node at ``path`` and the container holding it."""
        if (n, path) not in self.positioned:
            self.positioned[n, path] = self._read_positioned(n, path)
        return self.positioned[n, path]

    def _read_positioned(self, n: int, path: Path_) -> tuple[Any, Any] | None:
        display, text, root = self.documents[n]
        fast_node = _follow(root, path)
        if len(text) >= WHOLE_FILE_BELOW:
            for start, end, consumed in reversed(entry_spans(text, path)):
                problems = Problems()
                part = parse_yaml(text[start:end], display, problems, line_offset=_lines_before(text, start))
                if problems or not isinstance(part, YDict) or len(part) != 1 or path[consumed - 1] not in part:
                    continue
                found = _walk(part, path[consumed - 1:])
                if found is not None and found[1] == fast_node:
                    return found
        whole = self._whole(n)
        return None if whole is None else _walk_root(whole, path)

    def _whole(self, n: int) -> Any:
        if n not in self.whole:
            display, text, _ = self.documents[n]
            problems = Problems()
            value = parse_yaml(text, display, problems)
            self.whole[n] = None if problems else value
        return self.whole[n]


def _follow(value: Any, path: Path_) -> Any:
    for step in path:
        value = value[step]
    return value


def _walk(node: Any, steps: Path_) -> tuple[Any, Any] | None:
    """``(holder of the last step, node)`` following ``steps`` (at least one) from ``node``."""
    holder = node
    for step in steps:
        if not isinstance(node, (YDict, YList)):
            return None
        holder = node
        try:
            node = node[step]
        except (KeyError, IndexError, TypeError):
            return None
    return holder, node


def _walk_root(root: Any, path: Path_) -> tuple[Any, Any] | None:
    if not path:
        return (root, root) if isinstance(root, (YDict, YList)) else None
    return _walk(root, path)


# ---------------------------------------------------------------- the line scan


def entry_spans(text: str, path: Path_) -> list[tuple[int, int, int]]:
    """``(start, end, consumed)``: text spans of the block mapping entries along ``path``.

    The span for ``consumed = k`` is the entry ``path[k-1]: ...`` of the mapping at
    ``path[:k-1]``, from the start of its key's line to the first line indented no
    deeper. Stops at the first step that is not a plain or quoted string key of a block
    mapping found exactly once. Heuristic by design: callers check what they read.
    """
    spans: list[tuple[int, int, int]] = []
    start, end, indent = 0, len(text), 0
    for k, key in enumerate(path):
        if not isinstance(key, str):
            break
        if k:
            indent = _child_indent(text, start, end, indent)
            if indent is None:
                break
        found = _find_entry(text, start, end, indent, key)
        if found is None:
            break
        start, end = found
        spans.append((start, end, k + 1))
    return spans


def _child_indent(text: str, start: int, end: int, indent: int) -> int | None:
    """Indentation of the block mapping that is the value of the entry whose key line starts at ``start``."""
    eol = text.find("\n", start, end)
    if eol < 0:
        return None
    head = text[start:eol]
    colon = _KEY_END.search(head)
    rest = head[colon.end():].strip() if colon else "?"
    if rest and not rest.startswith("#"):  # a value on the key's line: not a block mapping below
        return None
    line = eol + 1
    while line < end:
        nl = text.find("\n", line, end)
        nl = end if nl < 0 else nl
        content = text[line:nl]
        stripped = content.lstrip(" ")
        if stripped.strip() and not stripped.startswith("#"):
            child = len(content) - len(stripped)
            return child if child > indent and not stripped.startswith("- ") and stripped != "-" else None
        line = nl + 1
    return None


_KEY_END = re.compile(r"[ \t]*:(?=[ \t\r\n]|\Z)")


def _key_forms(key: str) -> list[str]:
    forms = ["'" + key.replace("'", "''") + "'"]
    if '"' not in key and "\\" not in key and key.isprintable():
        forms.append(f'"{key}"')
    if key and key == key.strip() and plain_scalar(key) == key and key[0] not in "-?:,[]{}#&*!|>'\"%@`":
        forms.append(key)
    return forms


def _find_entry(text: str, start: int, end: int, indent: int, key: str) -> tuple[int, int] | None:
    """The span of the one line in ``[start, end)`` that starts ``key:`` at ``indent``, and its value's lines."""
    lines = set()
    for form in _key_forms(key):
        first = " " * indent + form
        if text.startswith(first, start) and _KEY_END.match(text, start + len(first)):
            lines.add(start)
        at = start
        while (at := text.find("\n" + first, at, end)) >= 0:
            at += 1
            if _KEY_END.match(text, at + len(first)):
                lines.add(at)
    if len(lines) != 1:
        return None
    (line,) = lines
    eol = text.find("\n", line, end)
    if eol < 0:
        return line, end
    stop = _entry_end(indent).search(text, eol, end)
    return line, (stop.start() + 1 if stop else end)


_ENDS: dict[int, re.Pattern[str]] = {}


def _entry_end(indent: int) -> re.Pattern[str]:
    """A line break before a line that ends a block mapping entry at ``indent``.

    That is a line with content (not a comment) indented less, or as much and not a
    ``-`` item (a sequence may be the value of a key at the same indentation).
    """
    if indent not in _ENDS:
        less = f" {{0,{indent - 1}}}(?=[^ \\r\\n#])|" if indent else ""
        _ENDS[indent] = re.compile(f"\\n(?:{less} {{{indent}}}(?=[^ \\r\\n#-]|-[^ \\t\\r\\n]))")
    return _ENDS[indent]


_BREAKS = re.compile("\r(?!\n)|[\x85\u2028\u2029]")


def _lines_before(text: str, index: int) -> int:
    """Line breaks before ``index`` as PyYAML counts them (CR, NEL, LS and PS too)."""
    count = text.count("\n", 0, index)
    if "\r" in text or not text.isascii():
        count += sum(1 for _ in _BREAKS.finditer(text, 0, index))
    return count
