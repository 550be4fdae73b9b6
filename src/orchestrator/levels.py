"""A dependency graph cut into levels, with plain lists (the planner's waves, the loader's cycle check).

``graphlib`` does the same in generic Python objects at four to five times the cost on
10,000 nodes; it is still what finds the cycle to show when there is one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


def levels(graph: Iterable[tuple[str, Sequence[str]]]) -> tuple[list[list[str]], int]:
    """``graph`` gives each node with the nodes it waits for. Returns the levels (level n: the
    nodes whose longest chain of waits is n long) and how many nodes there are; fewer placed
    than that means a cycle. The order is ``graphlib.TopologicalSorter.static_order``'s: nodes
    by first mention (a node, then what it waits for), each level in the order the one before
    released it. A node waiting twice for another is released by the second."""
    waiting: dict[str, list] = {}  # node -> [waits not yet over, dependents]
    for node, waits_for in graph:
        entry = waiting.get(node)
        if entry is None:
            entry = waiting[node] = [0, []]
        entry[0] += len(waits_for)
        for other in waits_for:
            target = waiting.get(other)
            if target is None:
                target = waiting[other] = [0, []]
            target[1].append(node)
    level = [node for node, (left, _) in waiting.items() if not left]
    result: list[list[str]] = []
    while level:
        result.append(level)
        following = []
        for node in level:
            for dependent in waiting[node][1]:
                entry = waiting[dependent]
                entry[0] -= 1
                if not entry[0]:
                    following.append(dependent)
        level = following
    return result, len(waiting)
