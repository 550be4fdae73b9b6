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
        self.items.append(Problem(mark, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def raise_if_any(self) -> None:
        if self.items:
            raise BlueprintError(self.items)


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """A ' (did you mean 'x'?)' suffix, or '' when nothing is close.

    A short name also matches a dotted name ending with it (``contained_in`` suggests
    ``orchestrator.relationships.contained_in``).
    """
    word = str(word)
    names = [str(c) for c in choices]
    close = difflib.get_close_matches(word, names, n=1, cutoff=0.6)
    if not close and word and "." not in word:
        close = [n for n in names if n.rsplit(".", 1)[-1].lower() == word.lower()][:1]
    return f" (did you mean '{close[0]}'?)" if close else ""
