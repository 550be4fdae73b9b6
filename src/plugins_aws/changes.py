"""Day 2 helpers: what an update changed, and how a drift report reads.

``ctx.changes`` maps leaf paths (``rules[0].cidr_ip``, ``tags.owner``, or a whole
``rules`` when the list grew or shrank) to ``(old, new)``; ``ctx.node.properties`` holds
the whole new values. An update that must undo what the old value did (revoke a rule no
longer declared, remove a tag) needs the whole old value: ``previous`` rebuilds it by
writing the old side of each change into a copy of the new one. Values known only at run
time (``get_attribute``, ``get_secret``) stay functions on the old side: callers skip them.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from typing import Any

_TOKEN = re.compile(r"\[(\d+)\]|\.?([^.\[\]]+)")


class Unknown(ValueError):
    """The old value cannot be rebuilt from the changes (a shape the new value does not have)."""


def top(path: str) -> str:
    """The property a change path belongs to: ``rules`` for ``rules[0].port``."""
    return re.split(r"[.\[]", path, maxsplit=1)[0]


def changed(changes: Mapping[str, Any], *names: str) -> bool:
    """Whether any of the properties ``names`` changed."""
    return any(top(path) in names for path in changes)


def _absent(value: Any) -> bool:
    from orchestrator.diff import ABSENT  # the sentinel of a side where the key did not exist

    return value is ABSENT


def previous(properties: Mapping[str, Any], changes: Mapping[str, tuple[Any, Any]], name: str) -> Any:
    """The value property ``name`` had before the changes (``None`` if it did not exist).

    Raises ``Unknown`` when a path does not fit the new value's shape.
    """
    value = copy.deepcopy(properties.get(name))
    for path, (old, _new) in changes.items():
        if top(path) != name:
            continue
        rest = path[len(name):]
        if not rest:
            value = None if _absent(old) else copy.deepcopy(old)
            continue
        keys: list[str | int] = [int(i) if i else k for i, k in _TOKEN.findall(rest)]
        value = _put(value, keys, old, path)
    return value


def _put(value: Any, keys: list[str | int], old: Any, path: str) -> Any:
    holder = value
    try:
        for key in keys[:-1]:
            holder = holder[key]
        last = keys[-1]
        if _absent(old):
            del holder[last]
        else:
            holder[last] = copy.deepcopy(old)
    except (KeyError, IndexError, TypeError) as exc:
        raise Unknown(f"cannot rebuild the old value at {path}") from exc
    return value


def previous_tags(properties: Mapping[str, Any], changes: Mapping[str, tuple[Any, Any]],
                  name: str = "tags") -> dict[str, Any]:
    """The old value of a flat dict property such as ``tags`` (its keys may contain dots)."""
    tags = dict(properties.get(name) or {})
    for path, (old, _new) in changes.items():
        if path == name:
            tags = dict(old) if isinstance(old, Mapping) else {}
        elif path.startswith(name + "."):
            key = path[len(name) + 1:]
            if _absent(old):
                tags.pop(key, None)
            else:
                tags[key] = old
    return tags


def tag_edits(old: Mapping[str, Any], new: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str | None]]:
    """``(to set, to remove)`` to go from the ``old`` declared tags to the ``new`` ones.

    Only what was declared is removed, with its old value when known (AWS then removes a
    tag only if it still has that value: a tag someone else changed since stays).
    """
    to_set = {k: v for k, v in new.items() if old.get(k) != v}
    to_remove = {k: (v if isinstance(v, str) else None) for k, v in old.items() if k not in new}
    return to_set, to_remove


def differs(recorded: Any, actual: Any) -> dict[str, Any]:
    """One drift entry, in the shape every type reports."""
    return {"recorded": recorded, "actual": actual}


def tag_drift(declared: Mapping[str, str], actual: Mapping[str, str]) -> dict[str, Any]:
    """``tags.KEY`` entries for declared tags that are missing or changed (others' tags are not ours)."""
    return {f"tags.{k}": differs(v, actual.get(k)) for k, v in declared.items() if actual.get(k) != v}
