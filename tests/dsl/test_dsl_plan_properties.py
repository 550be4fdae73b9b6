"""Random DAG blueprints plan into instances and waves that respect every relationship.

Templates ``t0..tN``; each may have depends_on / connected_to edges and at most one
contained_in edge, always to an earlier template (so the graph is a DAG), and 0-3
instances. The plan is checked against an oracle computed from the generated shape alone.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.dsl.loader import load_blueprint
from orchestrator.plan import Plan, build_plan
from orchestrator.plugins import get_plugin_manager

REL = "orchestrator.relationships."


@attrs.define
class Shape:
    instances: list[int]
    host: list[int | None]  # template index of the contained_in target
    edges: list[list[tuple[str, int]]]  # (depends_on | connected_to, target index), per template

    def blueprint(self) -> dict[str, Any]:
        templates = {}
        for i, count in enumerate(self.instances):
            rels = [{"type": REL + kind, "target": f"t{j}"} for kind, j in self.edges[i]]
            if self.host[i] is not None:
                rels.insert(0, {"type": REL + "contained_in", "target": f"t{self.host[i]}"})
            templates[f"t{i}"] = {"type": "orchestrator.nodes.Compute", "instances": count,
                                  "relationships": rels}
        return {"node_templates": templates}

    def hosts_of(self, i: int) -> list[int]:
        """Host template chain of template ``i``, nearest first."""
        chain = []
        while self.host[i] is not None:
            i = self.host[i]
            chain.append(i)
        return chain

    def count(self, i: int) -> int:
        host = self.host[i]
        return self.instances[i] * (1 if host is None else self.count(host))


@st.composite
def shapes(draw: st.DrawFn) -> Shape:
    n = draw(st.integers(min_value=1, max_value=7))
    instances, host, edges = [], [], []
    for i in range(n):
        instances.append(draw(st.integers(min_value=0, max_value=3)))
        host.append(draw(st.none() | st.integers(min_value=0, max_value=i - 1)) if i else None)
        kinds = st.sampled_from(["depends_on", "connected_to"])
        edges.append(draw(st.lists(st.tuples(kinds, st.integers(0, i - 1)), max_size=3)) if i else [])
    return Shape(instances, host, edges)


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@pytest.fixture(scope="module")
def type_sources() -> list[Any]:
    return get_plugin_manager(entry_points=False).type_sources


def plan_of(shape: Shape, workdir: Path, type_sources: list[Any]) -> Plan:
    path = workdir / "random.yaml"
    path.write_text(yaml.safe_dump(shape.blueprint(), sort_keys=False))
    return build_plan(load_blueprint(path, {}, type_sources))


def expected_targets(shape: Shape, plan: Plan, iid: str, kind: str, j: int) -> list[str]:
    """The oracle: which instances of template ``j`` a relationship of ``iid`` targets."""
    inst = plan.instances[iid]
    mine: dict[int, str] = {}  # host template index -> host instance id, up the chain
    host_id = inst.host_id
    for h in shape.hosts_of(int(inst.node[1:])):
        assert host_id is not None and plan.instances[host_id].node == f"t{h}"
        mine[h] = host_id
        host_id = plan.instances[host_id].host_id
    if kind == "contained_in" or j in mine:
        return [mine[j]]
    candidates = plan.nodes[f"t{j}"].instances
    common = [h for h in shape.hosts_of(int(inst.node[1:])) if h in shape.hosts_of(j)]
    if not common:
        return candidates
    nearest = common[0]  # hosts_of is nearest first

    def host_at(cid: str, level: int) -> str:
        cur = plan.instances[cid].host_id
        while plan.instances[cur].node != f"t{level}":
            cur = plan.instances[cur].host_id
        return cur

    return [c for c in candidates if host_at(c, nearest) == mine[nearest]]


@settings(max_examples=60, deadline=None)
@given(shape=shapes())
def test_random_dags_plan_correctly(shape: Shape, workdir: Path, type_sources: list[Any]) -> None:
    plan = plan_of(shape, workdir, type_sources)

    # instance counts: contained_in multiplies by the host's count
    for i in range(len(shape.instances)):
        ids = plan.nodes[f"t{i}"].instances
        assert len(ids) == shape.count(i)
        assert ids == [f"t{i}_{n}" for n in range(len(ids))]
    assert len(plan.instances) == sum(shape.count(i) for i in range(len(shape.instances)))

    # relationships: exactly the oracle's targets, in blueprint order
    for iid, inst in plan.instances.items():
        i = int(inst.node[1:])
        rels = ([("contained_in", shape.host[i])] if shape.host[i] is not None else []) + shape.edges[i]
        expected = [t for kind, j in rels for t in expected_targets(shape, plan, iid, kind, j)]
        assert inst.targets == expected, iid

    # waves: every instance once; every target in an earlier wave; no edge inside a wave
    waves = plan.waves()
    level = {iid: n for n, wave in enumerate(waves) for iid in wave}
    assert sorted(level) == sorted(plan.instances)
    assert sum(len(w) for w in waves) == len(plan.instances)
    for iid, inst in plan.instances.items():
        for target in inst.targets:
            assert level[target] < level[iid], (iid, target)
    for wave in waves:
        members = set(wave)
        assert not any(t in members for iid in wave for t in plan.instances[iid].targets)
    assert all(waves), "no empty wave"
    # waves are as early as possible: an instance not in the first wave has a target in the one before
    for iid, n in level.items():
        if n:
            assert any(level[t] == n - 1 for t in plan.instances[iid].targets)

    assert Plan.from_json(plan.to_json()) == plan
