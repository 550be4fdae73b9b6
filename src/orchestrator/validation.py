"""Asking plugins about a loaded blueprint: the ``validate_node`` hook, routed by type.

The core checks property values against the types' schemas; a plugin knows more (a
security group rule needs exactly one peer). Each node template is shown to the plugin
owning its type, and what it returns becomes ``FILE:LINE:COL`` problems like the core's
own, so ``validate`` reports everything before anything runs. A plugin that raises or
returns something odd is a problem of that template too, never a traceback.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from orchestrator.dsl.model import Blueprint, NodeTemplate
from orchestrator.dsl.problems import NOWHERE, Mark, Problem
from orchestrator.dsl.yaml_source import mark_of
from orchestrator.engine.dispatch import Dispatcher
from orchestrator.plugins import PluginManager

HOOK = "validate_node"


class RelationshipTemplateInfo(NamedTuple):
    type: str
    type_hierarchy: list[str]
    target: str
    target_type_hierarchy: list[str]


class NodeTemplateInfo(NamedTuple):
    """What ``validate_node(node)`` gets (``orchestrator.ctx.NodeTemplateInfo``)."""

    id: str
    type: str
    type_hierarchy: list[str]
    properties: Mapping[str, Any]
    relationships: list[RelationshipTemplateInfo]


def validate_nodes(pm: PluginManager, bp: Blueprint, with_marks: Callable[[], Blueprint]) -> list[Problem]:
    """The problems plugins find in ``bp``'s node templates.

    ``with_marks`` reads the blueprint again with positions; it is called only when
    there is a problem to place (the fast path reads none).
    """
    dispatcher = Dispatcher(pm)
    found: list[tuple[str, Any, str]] = []  # (template, path or None, message)
    for t in bp.templates.values():
        try:
            caller = dispatcher.caller(t.owner, HOOK)
        except Exception:  # the owner is missing: the install's plugin check says so
            continue
        if caller is None:
            continue
        try:
            results = caller(node=_info(bp, t))
        except Exception as exc:
            found.append((t.name, None, f"validate_node of plugin '{t.owner}' failed: {type(exc).__name__}: {exc}"))
            continue
        for result in results:
            found.extend((t.name, path, message) for path, message in _items(result, t.owner))
    if not found:
        return []
    marked = with_marks()
    return [Problem(_mark(marked.templates.get(name) or bp.templates[name], path),
                    f"node template '{name}': " + (f"property '{_display(path)}': " if path is not None else "")
                    + message) for name, path, message in found]


def _info(bp: Blueprint, t: NodeTemplate) -> NodeTemplateInfo:
    rels = [RelationshipTemplateInfo(r.type, list(r.hierarchy), r.target,
                                     list(bp.templates[r.target].hierarchy) if r.target in bp.templates else [])
            for r in t.relationships]
    return NodeTemplateInfo(t.name, t.type, list(t.hierarchy), t.values, rels)


def _items(result: Any, owner: str | None) -> Iterable[tuple[Any, str]]:
    """``(path or None, message)`` for each problem a plugin returned."""
    if result is None:
        return
    if isinstance(result, (str, tuple)):
        result = [result]
    try:
        items = list(result)
    except TypeError:
        yield None, f"validate_node of plugin '{owner}' returned {type(result).__name__}, not a list of problems"
        return
    for item in items:
        if isinstance(item, str):
            yield None, item
        elif isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], str) and _is_path(item[0]):
            yield item[0], item[1]
        else:
            yield None, f"validate_node of plugin '{owner}' returned {item!r}, not a message or (path, message)"


def _is_path(path: Any) -> bool:
    if isinstance(path, str):
        return True
    return isinstance(path, Sequence) and bool(path) and all(isinstance(p, (str, int)) for p in path)


def _steps(path: Any) -> list[Any]:
    return [path] if isinstance(path, str) else list(path)


def _display(path: Any) -> str:
    text = ""
    for step in _steps(path):
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


def _mark(t: NodeTemplate, path: Any) -> Mark:
    """Where the value at ``path`` is written; the template's own mark for a default."""
    container: Any = t.properties
    mark = t.mark
    for step in _steps(path) if path is not None else ():
        try:
            container[step]
        except (KeyError, IndexError, TypeError):
            break
        here = mark_of(container, step)
        if here == NOWHERE:
            break
        mark, container = here, container[step]
    return mark
