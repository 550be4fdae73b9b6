"""``get_input`` inside input defaults (Cloudify blueprints only).

Cloudify lets an input's default name other inputs (``availability_zone: {default:
{concat: [{get_input: region}, a]}}``); real blueprints lean on it. Our own dialect keeps
inputs independent of each other. Here a default's ``get_input`` calls are replaced by the
value of the input they name (given or defaulted, itself expanded first), so the input
ends up with a plain value like any other and every later check sees it. A default that
reaches itself again (``a -> b -> a``) is a cycle, reported once at the call that closes
it, with the whole chain.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.dsl.functions import _path_args, as_function, walk_path
from orchestrator.dsl.model import MISSING
from orchestrator.dsl.problems import Mark, Problems, did_you_mean, shown
from orchestrator.dsl.yaml_source import child_mark, marked_copy

# The value of an input, or MISSING when it has none (not given and no default, or broken).
Lookup = Callable[[str, tuple[str, ...]], Any]


class Failed(Exception):
    """A ``get_input`` in a default could not be resolved (already reported)."""


def has_get_input(value: Any) -> bool:
    """Whether ``value`` calls ``get_input`` anywhere (cheap check before expanding)."""
    if isinstance(value, dict):
        fn = as_function(value)
        if fn is not None and fn[0] == "get_input":
            return True
        return any(has_get_input(v) for v in value.values())
    if isinstance(value, list):
        return any(has_get_input(v) for v in value)
    return False


def expand(value: Any, mark: Mark, chain: tuple[str, ...], names: Any, lookup: Lookup,
           problems: Problems, where: str) -> Any:
    """``value`` with each ``get_input`` replaced by that input's value; ``Failed`` when one
    cannot be (undeclared input, bad arguments, a cycle, an input without a value)."""
    if isinstance(value, dict):
        fn = as_function(value)
        if fn is not None and fn[0] == "get_input":
            return _one(fn[1], child_mark(value, "get_input", mark, value=False), chain, names, lookup,
                        problems, where)
        out = marked_copy(value, mark)
        for k, v in value.items():
            out[k] = expand(v, child_mark(value, k, mark), chain, names, lookup, problems, where)
        return out
    if isinstance(value, list):
        items = marked_copy(value, mark)
        for i, v in enumerate(value):
            items.append(expand(v, child_mark(value, i, mark), chain, names, lookup, problems, where))
        return items
    return value


def _one(args: Any, mark: Mark, chain: tuple[str, ...], names: Any, lookup: Lookup, problems: Problems,
         where: str) -> Any:
    path = _path_args(args)
    if path is None:
        problems.add(mark, f"{where}: get_input takes an input name or [name, key, ...]")
        raise Failed
    name = path[0]
    if name not in names:
        problems.add(mark, f"{where}: get_input of undeclared input '{shown(name)}'{did_you_mean(name, names)}")
        raise Failed
    if name in chain:
        cycle = " -> ".join((*chain[chain.index(name):], name))
        problems.add(mark, f"{where}: get_input cycle among input defaults: {shown(cycle)}")
        raise Failed
    found = lookup(name, chain)
    if found is MISSING:
        raise Failed  # that input's own problem (required, not given; or broken) says why
    result = walk_path(found, path[1:])
    if result is MISSING:
        problems.add(mark, f"{where}: get_input: input '{shown(name)}' has no path {shown(path[1:])}")
        raise Failed
    return result


__all__ = ["Failed", "expand", "has_get_input"]
