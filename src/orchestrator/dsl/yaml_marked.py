"""The slow path of YAML loading: PyYAML's composer into ``YDict``/``YList`` with marks.

It reads a file whose fast parse failed, or the parts of a file a problem points into,
and reports syntax errors and breaches of ``limits`` as ``FILE:LINE:COL`` problems. Only
this path imports PyYAML (see ``yaml_source``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from orchestrator.dsl.limits import MAX_DEPTH, MAX_INT_DIGITS
from orchestrator.dsl.problems import Mark, Problems, shown
from orchestrator.dsl.yaml_scan import check_aliases, non_printable, too_deep_at, too_large
from orchestrator.dsl.yaml_source import PLAIN_TAG, YDict, YList, plain_scalar, position

_BaseLoader: type = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
C = TypeVar("C", YDict, YList)


class _Marked:
    """What makes a PyYAML loader ours: problems instead of exceptions, marks, the depth limit.
    Mixed into libyaml's loader (``_Loader``) or PyYAML's pure one (``yaml11``'s fallback)."""

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

    def nested(self, node: yaml.Node, result: C, fill: Callable[[Any, Any, C], None]) -> C:
        """``result`` (a ``YDict`` or ``YList``) marked and filled by ``fill(self, node, result)``
        one level deeper; a collection nested deeper than MAX_DEPTH is reported and left empty."""
        result.mark = self.mark(node)
        if self.depth >= MAX_DEPTH:
            self.problems.add(result.mark, f"YAML nesting deeper than {MAX_DEPTH} levels")
            return result
        self.depth += 1
        try:
            fill(self, node, result)
        finally:
            self.depth -= 1
        return result


class _Loader(_Marked, _BaseLoader):  # type: ignore[misc, valid-type]
    """Our YAML 1.2 dialect, parsed by libyaml when it is there."""


def _construct_plain(loader: _Loader, node: yaml.ScalarNode) -> Any:
    value = plain_scalar(node.value)
    if too_large(value):
        loader.problems.add(loader.mark(node), f"integer too large: more than {MAX_INT_DIGITS} digits")
        return None
    return value


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> YDict:
    return loader.nested(node, YDict(), _fill_mapping)


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
    return loader.nested(node, YList(), _fill_sequence)


def _fill_sequence(loader: _Loader, node: yaml.SequenceNode, result: YList) -> None:
    for child in node.value:
        result.append(loader.construct_object(child, deep=True))
        result.item_marks.append(loader.mark(child))


_Loader.add_constructor(PLAIN_TAG, _construct_plain)
_Loader.add_constructor("tag:yaml.org,2002:map", _construct_mapping)
_Loader.add_constructor("tag:yaml.org,2002:seq", _construct_sequence)


def parse_marked(text: str, filename: str, problems: Problems, line_offset: int = 0, *,
                 loader_class: type[_Loader] | None = None) -> Any:
    """Parse one YAML document; syntax errors become problems and the result ``None``.

    ``line_offset`` is added to every line: ``text`` is a part of a file starting there.
    ``loader_class`` reads another YAML flavour the same way (Cloudify's YAML 1.1, ``yaml11``).
    """
    bad = non_printable().search(text)
    if bad is not None:
        line, column = position(text, bad.start())
        problems.add(Mark(filename, line + line_offset, column),
                     f"YAML syntax error: control character U+{ord(bad.group()):04X} is not allowed")
        return None
    if not check_aliases(text, filename, problems, line_offset):
        return None
    loader = (loader_class or _Loader)(text, filename, problems, line_offset)
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
