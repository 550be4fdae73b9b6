"""Deployment inputs from the command line: ``-i KEY=VALUE``, ``-i file.yaml``, or both.

A value given as ``KEY=VALUE`` is text; it is read as YAML 1.2, exactly as a value in the
blueprint would be (so ``3`` is an integer and ``yes`` a string), unless the input is
declared as a string, in which case it is kept verbatim (``007``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orchestrator.dsl.model import PropertyDef
from orchestrator.dsl.problems import Mark, Problems, shown
from orchestrator.dsl.yaml_source import key_mark, mark_of, parse_yaml_fast, read_yaml_file
from orchestrator.record import Record

_PAIR = re.compile(r"^[A-Za-z_][\w.-]*=")


class GivenInput(Record):
    __slots__ = ("value", "mark", "text", "name_mark")

    def __init__(self, value: Any, mark: Mark, text: bool = False, name_mark: Mark | None = None) -> None:
        self.value = value
        self.mark = mark  # where the value is
        self.text = text  # came as KEY=VALUE text; coerced by the declared type
        self.name_mark = name_mark  # where the name is (an unknown input is reported there)


def display_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def parse_input_args(args: Iterable[str], problems: Problems, label: str = "<-i>") -> dict[str, GivenInput]:
    """Read every ``-i`` argument (``-p`` for ``label="<-p>"``); later arguments override earlier ones."""
    given: dict[str, GivenInput] = {}
    for n, arg in enumerate(args, start=1):
        if _PAIR.match(arg) and not Path(arg).is_file():
            col = 1
            for part in arg.split(";"):
                if part.strip():
                    key, sep, value = part.partition("=")
                    mark = Mark(label, n, col + len(key) + 1)
                    if not sep or not key.strip():
                        problems.add(Mark(label, n, col), f"expected KEY=VALUE, got {shown(repr(part))}")
                    else:
                        name_mark = Mark(label, n, col + len(key) - len(key.lstrip()))
                        given[key.strip()] = GivenInput(value, mark, text=True, name_mark=name_mark)
                col += len(part) + 1
            continue
        path = Path(arg)
        if not path.is_file():
            problems.add(Mark(label, n, 1), f"inputs file '{shown(arg)}' does not exist (and is not KEY=VALUE)")
            continue
        data = read_yaml_file(path, display_path(path), problems)
        if data is None:
            continue
        if not isinstance(data, dict):
            problems.add(mark_of(data) if hasattr(data, "mark") else Mark(label, 1, 1),
                         "an inputs file must be a mapping of input name to value")
            continue
        for key, value in data.items():
            given[str(key)] = GivenInput(value, mark_of(data, key), name_mark=key_mark(data, key))
    return given


def coerce(given: GivenInput, decl: PropertyDef) -> Any:
    """The value of a ``KEY=VALUE`` text, read as YAML 1.2 like the blueprint (``yes`` stays text)."""
    if not given.text or decl.type == "string" or given.value == "":
        return given.value
    ok, value = parse_yaml_fast(given.value)
    return value if ok else given.value


def given_from_mapping(values: Mapping[str, Any]) -> dict[str, GivenInput]:
    """Inputs passed as Python values (the testing API) rather than text."""
    return {k: GivenInput(v, Mark("<inputs>", 1, 1)) for k, v in values.items()}


__all__ = ["GivenInput", "coerce", "display_path", "given_from_mapping", "key_mark", "parse_input_args"]
