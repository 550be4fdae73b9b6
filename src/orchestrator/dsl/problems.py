"""Positions in source files and the problems reported against them."""

from __future__ import annotations

import difflib
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


class Problem(NamedTuple):
    mark: Mark
    message: str

    def __str__(self) -> str:
        return f"{self.mark}: {self.message}"


class BlueprintError(OrchestratorError):
    """Every problem found in a blueprint or its inputs, in file order."""

    def __init__(self, problems: Iterable[Problem]) -> None:
        self.problems = sorted(set(problems), key=lambda p: (p.mark, p.message))
        super().__init__("\n".join(map(str, self.problems)))


class Problems:
    """Collects problems so validation can report all of them at once."""

    __slots__ = ("items",)

    def __init__(self) -> None:
        self.items: list[Problem] = []

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
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 3 * limit:
        return f"<integer of {value.bit_length()} bits>"  # str() refuses > 4,300 digits
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        text = text[:limit - 1] + "…"
    return text if text.isprintable() else _escape(text)


def _escape(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def one_line(message: str) -> str:
    """A message as printed: no line breaks or control characters, at most ~800 characters.

    The last guard: messages echo input through ``shown``; anything that slips past (a
    third-party error text, a list of many names) is cut in the middle here.
    """
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
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close and word and "." not in word:
        close = [n for n in names if n.rsplit(".", 1)[-1].lower() == word.lower()][:1]
    return f" (did you mean '{shown(close[0])}'?)" if close else ""
