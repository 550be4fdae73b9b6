"""Property schemas (type properties, data type fields, inputs) and the checks on values.

Values are checked against ``PropertyDef`` after functions are resolved; values still
holding a run-time function (``get_attribute``, ``get_secret``) are checked at run time.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.dsl.functions import as_function
from orchestrator.dsl.model import MISSING, Constraint, PropertyDef, TypeDef
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import child_mark, key_mark, mark_of

PRIMITIVE_TYPES = ("string", "integer", "float", "boolean", "list", "dict")
INPUT_KEYS = ("type", "default", "required", "description", "constraints", "entry_schema", "display_label", "hidden")
PROPERTY_KEYS = ("type", "default", "required", "description", "constraints", "entry_schema", "replace_on_change")


def describe(value: Any) -> str:
    """``"string 'x'"``, ``"integer 3"``, ``"boolean true"``, ``"list"``: a value as a YAML user reads it."""
    kind = type_name_of(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"{kind} {'null' if value is None else str(value).lower()}"
    text = repr(value) if not isinstance(value, (dict, list)) else ""
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}".strip()


def type_name_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "dict"
    return type(value).__name__


# ---------------------------------------------------------------- constraints


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_PLAIN_TYPES = {"string": (str,), "integer": (int,), "float": (int, float), "boolean": (bool,)}


def plainly_valid(prop: PropertyDef, value: Any) -> bool:
    """True when ``ValueChecker.check_property`` would find nothing, known without the mark
    and the wording a problem would need: a null, any value of an untyped property without
    constraints, or a plain scalar of the property's scalar type without constraints. Most
    values of a large blueprint are one of these."""
    if value is None:
        return True
    if prop.constraints:
        return False
    if prop.type is None:
        return True
    plain = _PLAIN_TYPES.get(prop.type)
    return plain is not None and value.__class__ in plain


def _length(v: Any) -> int | None:
    return len(v) if isinstance(v, (str, list, dict)) else None


def _check_pattern(value: Any, arg: Any) -> str | None:
    if not isinstance(value, str):
        return f"{describe(value)} cannot match a pattern"
    if re.fullmatch(arg, value) is None:
        return f"{shown(repr(value))} does not match the pattern {shown(repr(arg))}"
    return None


def _compare(op: Callable[[Any, Any], bool], word: str) -> Callable[[Any, Any], str | None]:
    def check(value: Any, arg: Any) -> str | None:
        try:
            ok = op(value, arg)
        except TypeError:
            return f"{describe(value)} cannot be compared with {shown(repr(arg))}"
        return None if ok else f"{shown(repr(value))} is not {word} {shown(repr(arg))}"

    return check


def _in_range(value: Any, arg: Any) -> str | None:
    low, high = arg
    try:
        ok = low <= value <= high
    except TypeError:
        return f"{describe(value)} cannot be compared with {shown(repr(low))}..{shown(repr(high))}"
    return None if ok else f"{shown(repr(value))} is not in the range {shown(repr(low))}..{shown(repr(high))}"


def _valid_values(value: Any, arg: Any) -> str | None:
    if value in arg:
        return None
    return f"{shown(repr(value))} is not one of the valid values: {shown(', '.join(map(repr, arg)))}"


def _length_check(op: Callable[[int, int], bool], word: str) -> Callable[[Any, Any], str | None]:
    def check(value: Any, arg: Any) -> str | None:
        n = _length(value)
        if n is None:
            return f"{describe(value)} has no length"
        return None if op(n, arg) else f"length {n} is not {word} {arg}"

    return check


CONSTRAINTS: dict[str, Callable[[Any, Any], str | None]] = {
    "equal": _compare(lambda v, a: v == a, "equal to"),
    "greater_than": _compare(lambda v, a: v > a, "greater than"),
    "greater_or_equal": _compare(lambda v, a: v >= a, "greater than or equal to"),
    "less_than": _compare(lambda v, a: v < a, "less than"),
    "less_or_equal": _compare(lambda v, a: v <= a, "less than or equal to"),
    "in_range": _in_range,
    "valid_values": _valid_values,
    "length": _length_check(lambda n, a: n == a, "equal to"),
    "min_length": _length_check(lambda n, a: n >= a, "at least"),
    "max_length": _length_check(lambda n, a: n <= a, "at most"),
    "pattern": _check_pattern,
}


def _constraint_argument_problem(name: str, arg: Any) -> str | None:
    if name == "in_range":
        if not (isinstance(arg, list) and len(arg) == 2 and all(_number(a) for a in arg)):
            return "in_range takes a list of two numbers [low, high]"
    elif name == "valid_values":
        if not isinstance(arg, list):
            return "valid_values takes a list"
    elif name in ("length", "min_length", "max_length"):
        if not (isinstance(arg, int) and not isinstance(arg, bool) and arg >= 0):
            return f"{name} takes a non-negative integer"
    elif name == "pattern":
        if not isinstance(arg, str):
            return "pattern takes a regular expression string"
        try:
            re.compile(arg)
        except re.error as exc:
            return f"invalid regular expression {shown(repr(arg))}: {exc}"
    return None


def parse_constraints(raw: Any, mark: Mark, problems: Problems, label: str = "") -> list[Constraint]:
    """Parse a ``constraints`` list; ``label`` (e.g. "input 'port'") prefixes each problem."""
    prefix = f"{label}: " if label else ""
    if not isinstance(raw, list):
        problems.add(mark, f"{prefix}constraints must be a list of single-key mappings")
        return []
    result = []
    for i, item in enumerate(raw):
        imark = mark_of(raw, i)
        if not (isinstance(item, dict) and len(item) == 1):
            problems.add(imark, f"{prefix}a constraint is a mapping with one key, e.g. {{min_length: 1}}")
            continue
        ((name, arg),) = item.items()
        if name not in CONSTRAINTS:
            problems.add(
                key_mark(item, name),
                f"{prefix}unknown constraint '{shown(name)}'{did_you_mean(name, CONSTRAINTS)}",
            )
            continue
        error = _constraint_argument_problem(name, arg)
        if error:
            problems.add(mark_of(item, name), f"{prefix}{error}")
            continue
        result.append(Constraint(name, arg, key_mark(item, name)))
    return result


# ---------------------------------------------------------------- schema parsing


def description_of(body: Mapping[str, Any], owner: str, problems: Problems) -> str:
    """The ``description`` of a blueprint, template, type, property or output: text or nothing."""
    text = body.get("description")
    if text is None:
        return ""
    if not isinstance(text, str):
        problems.add(mark_of(body, "description"), f"{owner}: description must be a string, got {describe(text)}")
        return ""
    return text


def parse_property_def(
    name: str, raw: Any, mark: Mark, what: str, problems: Problems, *, allowed=PROPERTY_KEYS,
    owner: str = "",
) -> PropertyDef:
    """Parse ``{type, default, required, ...}``; unknown keys are reported.

    Problems name the property as ``{what} '{name}'`` plus ``of {owner}`` when given
    (e.g. "property 'port' of node type 'my.Server'").
    """
    label = f"{what} '{shown(name)}'" + (f" of {owner}" if owner else "")
    prop = PropertyDef(name=name, mark=mark, raw=raw)
    if raw is None:
        return prop
    if not isinstance(raw, dict):
        problems.add(mark, f"{label} must be a mapping (type, default, required, ...)")
        return prop
    for key in raw:
        if key not in allowed:
            problems.add(
                key_mark(raw, key),
                f"unknown key '{shown(key)}' in {label}{did_you_mean(key, allowed)}",
            )
    if "type" in raw:
        if isinstance(raw["type"], str):
            prop.type = raw["type"]
        else:
            problems.add(mark_of(raw, "type"), f"{label}: type must be a type name")
    if "required" in raw:
        if isinstance(raw["required"], bool):
            prop.required = raw["required"]
        else:
            problems.add(mark_of(raw, "required"), f"{label}: required must be true or false")
    if "default" in raw:
        prop.default = raw["default"]
    if "replace_on_change" in raw:
        if isinstance(raw["replace_on_change"], bool):
            prop.replace_on_change = raw["replace_on_change"]
        else:
            problems.add(mark_of(raw, "replace_on_change"), f"{label}: replace_on_change must be true or false")
    prop.description = description_of(raw, label, problems)
    if "constraints" in raw:
        prop.constraints = parse_constraints(raw["constraints"], mark_of(raw, "constraints"), problems, label)
    if "entry_schema" in raw:
        entry = raw["entry_schema"]
        if isinstance(entry, dict) and isinstance(entry.get("type"), str):
            entry = entry["type"]
        if isinstance(entry, str):
            prop.entry_schema = entry
        else:
            problems.add(
                mark_of(raw, "entry_schema"),
                f"{label}: entry_schema must be a type name or {{type: NAME}}",
            )
    return prop


def parse_property_defs(raw: Any, mark: Mark, what: str, problems: Problems,
                        owner: str = "") -> dict[str, PropertyDef]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        where = f" of {owner}" if owner else ""
        problems.add(mark, f"the {what} definitions{where} must be a mapping of name to definition")
        return {}
    return {
        str(name): parse_property_def(str(name), value, key_mark(raw, name), what, problems, owner=owner)
        for name, value in raw.items()
    }


# ---------------------------------------------------------------- value checking


class ValueChecker:
    """Checks values against property definitions, data types included, recursively."""

    def __init__(self, data_types: Mapping[str, TypeDef], problems: Problems) -> None:
        self.data_types = data_types
        self.problems = problems

    def known_type(self, name: str | None) -> bool:
        return name is None or name in PRIMITIVE_TYPES or name in self.data_types

    def check_property(self, prop: PropertyDef, value: Any, mark: Mark, where: str) -> None:
        """Check type, then constraints (only when the type fits: no follow-on complaints).

        A value still holding a run-time function is checked when it is resolved. ``None``
        (null, or a function that failed and was reported) passes, as in ``check_type``.
        """
        if value is None or as_function(value) is not None:
            return
        if not self.check_type(prop.type, prop.entry_schema, value, mark, where):
            return
        for c in prop.constraints:
            error = CONSTRAINTS[c.name](value, c.argument)
            if error:
                self.problems.add(mark, f"{where}: {error}")

    def check_type(
        self, type_name: str | None, entry: str | None, value: Any, mark: Mark, where: str
    ) -> bool:
        """Report a value that does not fit ``type_name``; False when its own type is wrong."""
        if type_name is None or value is None or as_function(value) is not None:
            return True
        ok = True
        if type_name == "string":
            ok = isinstance(value, str)
        elif type_name == "integer":
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif type_name == "float":
            ok = _number(value)
        elif type_name == "boolean":
            ok = isinstance(value, bool)
        elif type_name == "list":
            ok = isinstance(value, list)
            if ok and entry:
                for i, item in enumerate(value):
                    self.check_type(entry, None, item, _child_mark(value, i, mark), nested(where, f"[{i}]"))
        elif type_name == "dict":
            ok = isinstance(value, dict)
            if ok and entry:
                for k, item in value.items():
                    self.check_type(entry, None, item, _child_mark(value, k, mark), nested(where, f".{k}"))
        elif type_name in self.data_types:
            if isinstance(value, dict):
                self.check_fields(self.data_types[type_name], value, mark, where)
                return True
            ok = False
        if not ok:
            self.problems.add(mark, f"{where}: expected {type_name}, got {describe(value)}")
        return ok

    def check_fields(self, dtype: TypeDef, value: dict, mark: Mark, where: str) -> None:
        for key in value:
            if key not in dtype.properties:
                self.problems.add(
                    child_mark(value, key, mark, value=False),
                    f"{where}: unknown field '{shown(key)}' of data type '{shown(dtype.name)}'"
                    f"{did_you_mean(key, dtype.properties)}",
                )
        for name, prop in dtype.properties.items():
            if name in value:
                self.check_property(prop, value[name], _child_mark(value, name, mark), nested(where, f".{name}"))
            elif prop.required and prop.default is MISSING:
                self.problems.add(mark, f"{where}: missing required field '{shown(name)}' of data type '{shown(dtype.name)}'")


def nested(where: str, step: str) -> str:
    """``"property 'a'"`` + ``".b"`` -> ``"property 'a.b'"``: the path stays in one quote, the
    first one after the last ``": "`` (``"input 'env' of operation 'exec'"`` -> ``"input 'env.A'
    of operation 'exec'"``)."""
    head, sep, tail = where.rpartition(": ")
    start = tail.find("'")
    end = tail.find("'", start + 1) if start >= 0 else -1
    return f"{head}{sep}{tail[:end]}{step}{tail[end:]}" if end >= 0 else f"{where}{step}"


def _child_mark(container: Any, key: Any, fallback: Mark) -> Mark:
    return child_mark(container, key, fallback)


def fill_defaults(prop: PropertyDef, value: Any, data_types: Mapping[str, TypeDef]) -> Any:
    """A property value with data-type field defaults filled in, recursively (copied, never mutated).

    Covers a data-typed value, and lists or dicts whose ``entry_schema`` is a data type.
    """
    if not data_types:
        return value
    if as_function(value) is not None:
        return value  # resolved at run time; a function mapping is not a data-type value
    if prop.type in data_types and isinstance(value, dict):
        return _fill_fields(data_types[prop.type], value, data_types)
    entry = data_types.get(prop.entry_schema) if prop.entry_schema else None
    if entry is not None and isinstance(value, list):
        return [_fill_fields(entry, v, data_types) if _is_data(v) else v for v in value]
    if entry is not None and isinstance(value, dict):
        return {k: _fill_fields(entry, v, data_types) if _is_data(v) else v for k, v in value.items()}
    return value


def _is_data(value: Any) -> bool:
    return isinstance(value, dict) and as_function(value) is None


def _fill_fields(dtype: TypeDef, value: dict, data_types: Mapping[str, TypeDef]) -> dict:
    result = dict(value)
    for name, field in dtype.properties.items():
        if name not in result:
            if field.default is MISSING:
                continue
            result[name] = field.default
        result[name] = fill_defaults(field, result[name], data_types)
    return result
