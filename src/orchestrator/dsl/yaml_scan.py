"""Checks on YAML text before it is parsed: what the parsers must never be handed.

``yaml_rs`` (the fast path) keeps no positions and has no depth limit: 20,000 levels of
block nesting overflow its stack and kill the process. So the fast path only reads text
that ``fast_path_allowed`` clears (cheap scans of the text, a few ms for 5 MB), and a
parsed value must pass ``within_limits``; anything else is read by the slow path, which
reports the exact problem at its position. The slow path (PyYAML) shares aliased nodes,
so an alias bomb costs nothing there until a value is walked: ``check_aliases`` counts
what the aliases would expand to, from the event stream, before the document is built.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

from orchestrator.dsl.limits import MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH, MAX_INT_DIGITS
from orchestrator.dsl.problems import Mark, Problems, shown

if TYPE_CHECKING:
    import yaml


def _base_parser(text: str) -> Any:
    """libyaml's parser when PyYAML has it. PyYAML loads here: only the slow path scans events."""
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)(text)


@functools.cache
def non_printable() -> re.Pattern[str]:
    """Characters PyYAML refuses ("control characters are not allowed"); yaml_rs accepts
    most of them and stops reading at a NUL, so such text goes to the slow path. Compiled
    when first needed: the class takes ~10 ms to compile, and ASCII text never needs it."""
    return re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


# A run of this many digits may be an integer of more than MAX_INT_DIGITS digits
# (hexadecimal needs the fewest: 84 for 10**100).
_DIGIT_RUN = MAX_INT_DIGITS * 4 // 5
# Block nesting needs indentation or indicators ("- - -") at the start of a line.
_DEEP_START = re.compile(rf"[ \t?:-]{{{2 * MAX_DEPTH}}}")
_DEEP_LINE = re.compile("\n" + _DEEP_START.pattern)  # starts with a literal: a fast scan
_ALIAS = re.compile(r"(?:^|(?<=[\s\[{,:]))\*[^\s\[\]{},]", re.M)


def _byte_classes() -> bytes:
    table = bytearray(b" " * 256)
    for c in b"0123456789abcdefABCDEF_":
        table[c] = ord("d")
    for c in [*range(0x20), 0x7F]:
        if c not in (0x09, 0x0A, 0x0D):
            table[c] = ord("c")
    return bytes(table)


_CLASSES = _byte_classes()


def fast_path_allowed(text: str) -> bool | None:
    """Whether the fast parser may read ``text``: False, True, or None for "yes, then
    check its value with ``within_limits(value, numbers=True)``".

    False for a control character, a line indented deeper than the depth limit allows,
    or aliases beyond the limits or inside the node they refer to (yaml_rs reads those
    as null). None when a run of digits is long enough for a too-large integer (usually
    a checksum in a string). Texts with aliases are scanned by libyaml's event parser
    first (about 2.5x yaml_rs's own time); others cost a few ms per MB. False is cheap
    to be wrong about: the slow path then reads the text, with positions.
    """
    if text.isascii():
        classes = text.encode("ascii").translate(_CLASSES)
        if b"c" in classes:
            return False
    else:
        if non_printable().search(text):
            return False
        classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES)
    if _DEEP_START.match(text) or _DEEP_LINE.search(text):
        return False
    if "*" in text and _ALIAS.search(text) and not check_aliases(text, "", Problems()):
        return False
    return None if b"d" * _DIGIT_RUN in classes else True


_TOO_LARGE = 10**MAX_INT_DIGITS


def within_limits(value: Any, *, numbers: bool = False) -> bool:
    """Whether ``value`` nests at most MAX_DEPTH levels (and, with ``numbers``, holds no
    integer of more than MAX_INT_DIGITS digits, as key or value). No recursion."""
    level = [value] if isinstance(value, (dict, list)) else []
    containers = (dict, list)
    if numbers and too_large(value):
        return False
    for _ in range(MAX_DEPTH):
        if not level:
            return True
        if numbers:
            scalars = [x for c in level for x in (c.values() if isinstance(c, dict) else c)]
            scalars += [k for c in level if isinstance(c, dict) for k in c]
            if any(too_large(x) for x in scalars):
                return False
        level = [x for c in level for x in (c.values() if isinstance(c, dict) else c)
                 if isinstance(x, containers)]
    return not level


def too_large(x: Any) -> bool:
    """An integer of more than MAX_INT_DIGITS digits."""
    return type(x) is int and not -_TOO_LARGE < x < _TOO_LARGE


class AliasLimitError(Exception):
    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark, self.message = mark, message


def check_aliases(text: str, filename: str, problems: Problems, line_offset: int = 0) -> bool:
    """Refuse too many aliases, or aliases that expand to too much, at the offending alias.

    Reads the event stream only (no document is built), so it is linear in the text
    whatever the aliases would expand to. Returns False when a problem was added.
    Syntax errors are left to the parser that runs next.
    """
    if "*" not in text or not _ALIAS.search(text):
        return True
    import yaml

    parser = _base_parser(text)
    try:
        _count_aliases(parser)
    except AliasLimitError as exc:
        mark = Mark(filename, exc.mark.line + 1 + line_offset, exc.mark.column + 1)
        problems.add(mark, exc.message)
        return False
    except yaml.YAMLError:
        pass
    finally:
        parser.dispose()
    return True


def too_deep_at(text: str) -> tuple[int, int] | None:
    """0-based ``(line, column)`` of the first collection nested deeper than MAX_DEPTH.

    For text libyaml refuses at its own limit (1,000 levels): the problem is reported
    where our limit is crossed, as for shallower text. libyaml's scanner looks ahead
    across a run of flow brackets and stops before the parser reaches our limit, so
    PyYAML's own (pure Python, slower) parser reads texts up to 1 MB instead.
    """
    import yaml

    parser = yaml.SafeLoader(text) if len(text) < 1_000_000 else _base_parser(text)
    depth = 0
    try:
        while parser.check_event():
            event = parser.get_event()
            if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
                depth += 1
                if depth > MAX_DEPTH:
                    return event.start_mark.line, event.start_mark.column
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                depth -= 1
    except yaml.YAMLError:
        pass
    finally:
        parser.dispose()
    return None


def _count_aliases(parser: Any) -> None:
    import yaml

    sizes: dict[str, int] = {}  # anchor -> nodes the anchored node stands for
    open_: list[list[Any]] = []  # per open collection: [anchor, size]
    aliases = expanded = 0
    while parser.check_event():
        event = parser.get_event()
        if isinstance(event, yaml.DocumentStartEvent):
            sizes.clear()
            aliases = expanded = 0
            continue
        if isinstance(event, (yaml.MappingStartEvent, yaml.SequenceStartEvent)):
            open_.append([event.anchor, 1])
            if event.anchor is not None:
                sizes.pop(event.anchor, None)  # redefined: not usable until it ends
            continue
        if isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            anchor, size = open_.pop()
            size += 1
            if anchor is not None:
                sizes[anchor] = size
        elif isinstance(event, yaml.ScalarEvent):
            size = 1
            if event.anchor is not None:
                sizes[event.anchor] = 1
        elif isinstance(event, yaml.AliasEvent):
            aliases += 1
            if aliases > MAX_ALIASES:
                raise AliasLimitError(event.start_mark, f"more than {MAX_ALIASES} aliases in one document")
            if event.anchor not in sizes:
                if any(a == event.anchor for a, _ in open_):
                    raise AliasLimitError(event.start_mark,
                                          f"alias '*{shown(event.anchor)}' refers to a node that contains it")
                continue  # undefined: the parser reports it
            size = sizes[event.anchor]
            expanded += size
            if expanded > MAX_ALIAS_NODES:
                raise AliasLimitError(event.start_mark, f"aliases expand to more than {MAX_ALIAS_NODES} nodes"
                                      f" (alias '*{shown(event.anchor)}' adds {size})")
        else:
            continue
        if open_:
            open_[-1][1] += size
