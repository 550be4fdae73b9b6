"""Drawing a blueprint's templates and relationships as Graphviz DOT or Mermaid text."""

from __future__ import annotations

import re

from orchestrator.dsl.model import Blueprint

_SHORT = re.compile(r"^orchestrator\.relationships\.")


def _node_id(name: str) -> str:
    return re.sub(r"\W", "_", name)


def _label(bp: Blueprint, name: str) -> tuple[str, str]:
    t = bp.templates[name]
    count = f" \u00d7{t.instances}" if t.instances != 1 else ""  # "x2", with a real multiplication sign
    return f"{name}{count}", t.type


def _edge_label(rel_type: str) -> str:
    return _SHORT.sub("", rel_type)


def to_mermaid(bp: Blueprint) -> str:
    """A Mermaid flowchart: arrows point from a node to what it depends on."""
    lines = ["flowchart BT"]
    for name in bp.templates:
        title, type_name = _label(bp, name)
        lines.append(f'    {_node_id(name)}["{title}<br/><small>{type_name}</small>"]')
    for t in bp.templates.values():
        for rel in t.relationships:
            arrow = "==>" if rel.is_contained_in else "-->"
            lines.append(f"    {_node_id(t.name)} {arrow}|{_edge_label(rel.type)}| {_node_id(rel.target)}")
    return "\n".join(lines) + "\n"


def to_dot(bp: Blueprint) -> str:
    """A Graphviz digraph; contained_in edges are bold."""
    lines = ["digraph blueprint {", "    rankdir=BT;", '    node [shape=box, style=rounded, fontname="Helvetica"];']
    for name in bp.templates:
        title, type_name = _label(bp, name)
        lines.append(f'    {_node_id(name)} [label="{title}\\n{type_name}"];')
    for t in bp.templates.values():
        for rel in t.relationships:
            style = ", style=bold" if rel.is_contained_in else ""
            lines.append(f'    {_node_id(t.name)} -> {_node_id(rel.target)} [label="{_edge_label(rel.type)}"{style}];')
    lines.append("}")
    return "\n".join(lines) + "\n"
