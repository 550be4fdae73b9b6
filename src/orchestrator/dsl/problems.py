"""Positions in source files and the problems reported against them."""

from __future__ import annotations

import operator
import re
from collections.abc import Iterable
from typing import NamedTuple

from orchestrator.errors import OrchestratorError


class Mark(NamedTuple):
    """A 1-based position in a source file, printed as ``FILE:LINE:COL``."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


NOWHERE = Mark("<unknown>", 0, 0)


class Pending(tuple):
    """A position not looked up yet: ``container[key]`` (its value, its key, or the container).

    The fast parse keeps no positions, so marks taken from its plain containers are
    pending; when a pass finds problems, ``locate.settle`` turns them into marks by
    finding the container in the parsed files and reading only that part again with
    positions. A container in no file (a plugin's mapping, a copy) gets ``fallback``.
    A tuple made by ``pending()``: validation takes hundreds of thousands of marks and
    needs almost none of them. Never hashed (its container is a dict).
    """

    __slots__ = ()
    container = property(operator.itemgetter(0))
    key = property(operator.itemgetter(1))
    kind = property(operator.itemgetter(2))  # "value", "key" or "self"
    fallback = property(operator.itemgetter(3))

    def settled(self) -> Mark:
        """The mark when the container is in no file: the end of the fallback chain."""
        mark: Mark | Pending = self
        while isinstance(mark, Pending):
            mark = mark.fallback
        return mark

    def __str__(self) -> str:
        return str(self.settled())

    __repr__ = __str__


_new_tuple = tuple.__new__


def pending(container: object, key: object, kind: str, fallback: Mark | Pending) -> Pending:
    return _new_tuple(Pending, (container, key, kind, fallback))


AnyMark = Mark | Pending


class Problem(NamedTuple):
    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}"


class BlueprintError(OrchestratorError):
    """Every problem found in a blueprint or its inputs, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        problems = [Problem(p.mark.settled(), p.message) if isinstance(p.mark, Pending) else p for p in problems]
        self.problems = sorted(set(problems), key=lambda p: (p.mark, p.message))
        super().__init__("\n".join(map(str, self.problems)))


class Problems:
    """Collects problems so validation can report all of them at once.

    ``inexact`` says that a problem's text depends on a position the fast parse did
    not have (e.g. "defined differently at FILE:LINE:COL"): such a pass is repeated
    with positions rather than settled.
    """

    __slots__ = ("inexact", "items")

    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.inexact = False

    def add(self, mark: Mark, message: str) -> None:
        self.items.append(Problem(mark, one_line(message)))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise BlueprintError(self.items)


MAX_SHOWN = 200  # characters of input a message echoes (also in limits.py, which imports us)
MAX_MESSAGE = 4 * MAX_SHOWN


def shown(value: object, limit: int = MAX_SHOWN) -> str:
    """``value`` as a message echoes it: one line, at most ``limit`` characters, then '…'.

    Every key, name, value or line of input that a message quotes goes through here, so
    a 10 MB line or a key holding a line break cannot flood or split the output.
    """
    if value.__class__ is str and len(value) <= limit and value.isprintable():
        return value  # the common case, first: names are shown in every "where" prefix
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"<integer of {value.bit_length()} bits>"  # str() refuses > 4,300 digits
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text if text.isprintable() else _escape(text)


def _escape(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


_LONG_QUOTED = re.compile(f"'([^']{{{MAX_SHOWN - 1}}})[^']+'")


def one_line(message: str) -> str:
    """A message as printed: no line breaks or control characters, at most ~800 characters.

    The last guard: messages quote names as ``'name'``, and any quoted run longer than
    ``MAX_SHOWN`` is cut here (so hot paths may build "where" prefixes without
    ``shown``); anything else that slips past (a third-party error text, a list of many
    names) is cut in the middle.
    """
    if len(message) > MAX_SHOWN:
        message = _LONG_QUOTED.sub("'\\1…'", message)
    if len(message) > MAX_MESSAGE:
        message = message[:MAX_MESSAGE - MAX_SHOWN] + "…" + message[-MAX_SHOWN + 1:]
    return message if message.isprintable() else _escape(message)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close.

    A short name also matches a dotted name ending with it (``contained_in`` suggests
    ``orchestrator.relationships.contained_in``).
    """
    word = str(word)
    if len(word) > MAX_SHOWN:
        return ""  # nothing that long is a typo, and difflib is quadratic
    names = [str(c) for c in choices]
    likely = names
    if len(names) > 2_000:  # difflib takes ~0.3 s for 50,000 names: a typo keeps length and first letter
        likely = [n for n in names if n[:1] == word[:1] and abs(len(n) - len(word)) <= 2]
        likely = likely if len(likely) <= 2_000 else [n for n in likely if n[:2] == word[:2]][:2_000]
    import difflib  # here: only a typo pays for importing it

    close = difflib.get_close_matches(word, likely, n=1, cutoff=0.6)
    if not close and word and "." not in word:
        close = [n for n in names if n.rsplit(".", 1)[-1].lower() == word.lower()][:1]
    return f" (did you mean '{shown(close[0])}'?)" if close else ""
