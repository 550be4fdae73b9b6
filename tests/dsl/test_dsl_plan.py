"""Plan expansion: instance ids, contained_in replication, relationship targeting, waves, JSON."""

from __future__ import annotations

import json

from orchestrator.plan import Plan

HOSTED = """
node_templates:
  vm:
    type: orchestrator.nodes.Compute
    instances: 2
  db:
    type: orchestrator.nodes.Root
    instances: 2
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
  app:
    type: orchestrator.nodes.Root
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
      - {type: orchestrator.relationships.connected_to, target: db}
  web:
    type: orchestrator.nodes.Root
    instances: 2
    relationships:
      - {type: orchestrator.relationships.connected_to, target: app}
"""


def targets(plan: Plan, iid: str) -> list[str]:
    return [r.target_id for r in plan.instances[iid].relationships]


def test_instance_ids_are_template_and_number_in_a_stable_order(plan):
    first = plan(HOSTED)
    assert list(first.instances) == [
        "vm_0", "vm_1", "db_0", "db_1", "db_2", "db_3", "app_0", "app_1", "web_0", "web_1",
    ]
    assert first.nodes["db"].instances == ["db_0", "db_1", "db_2", "db_3"]
    again = plan(HOSTED)
    assert again.to_json() == first.to_json()


def test_contained_in_children_are_replicated_per_host_instance(plan):
    p = plan(HOSTED)
    hosts = {iid: inst.host_id for iid, inst in p.instances.items()}
    assert hosts == {
        "vm_0": None, "vm_1": None,
        "db_0": "vm_0", "db_1": "vm_0", "db_2": "vm_1", "db_3": "vm_1",
        "app_0": "vm_0", "app_1": "vm_1",
        "web_0": None, "web_1": None,
    }
    assert targets(p, "db_2") == ["vm_1"]


def test_relationship_on_the_same_host_targets_only_that_hosts_instances(plan):
    p = plan(HOSTED)
    assert targets(p, "app_0") == ["vm_0", "db_0", "db_1"]
    assert targets(p, "app_1") == ["vm_1", "db_2", "db_3"]


def test_relationship_without_a_common_host_targets_every_instance(plan):
    p = plan(HOSTED)
    assert targets(p, "web_0") == ["app_0", "app_1"]
    assert targets(p, "web_1") == ["app_0", "app_1"]


def test_nearest_common_host_and_own_indirect_host(plan):
    p = plan("""
        node_templates:
          vm: {type: orchestrator.nodes.Compute, instances: 2}
          runtime:
            type: orchestrator.nodes.Compute
            instances: 2
            relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
          db:
            type: orchestrator.nodes.Root
            relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
          app:
            type: orchestrator.nodes.Root
            relationships:
              - {type: orchestrator.relationships.contained_in, target: runtime}
              - {type: orchestrator.relationships.connected_to, target: db}
              - {type: orchestrator.relationships.depends_on, target: vm}
              - {type: orchestrator.relationships.depends_on, target: runtime}
    """)
    assert p.nodes["app"].instances == ["app_0", "app_1", "app_2", "app_3"]
    # app_2 lives on runtime_2, which lives on vm_1: the db of vm_1, its own vm, its own runtime
    assert p.instances["app_2"].host_id == "runtime_2"
    assert targets(p, "app_2") == ["runtime_2", "db_1", "vm_1", "runtime_2"]
    assert targets(p, "app_1") == ["runtime_1", "db_0", "vm_0", "runtime_1"]


def test_zero_instances_of_a_host_means_no_children(plan):
    p = plan("""
        node_templates:
          vm: {type: orchestrator.nodes.Compute, instances: 0}
          app:
            type: orchestrator.nodes.Root
            instances: 3
            relationships: [{type: orchestrator.relationships.contained_in, target: vm}]
          web:
            type: orchestrator.nodes.Root
            relationships: [{type: orchestrator.relationships.connected_to, target: app}]
    """)
    assert list(p.instances) == ["web_0"]
    assert targets(p, "web_0") == []


def test_waves_put_every_instance_after_its_targets(plan):
    p = plan(HOSTED)
    assert p.waves() == [["vm_0", "vm_1"], ["db_0", "db_1", "db_2", "db_3"], ["app_0", "app_1"],
                         ["web_0", "web_1"]]
    assert p.dependents()["app_0"] == ["web_0", "web_1"]
    assert p.dependents()["vm_0"] == ["db_0", "db_1", "app_0"]


def test_plan_json_round_trip(plan):
    p = plan(HOSTED + """
outputs:
  first_db: {value: {get_attribute: [db, ip]}}
""")
    text = p.to_json()
    back = Plan.from_json(text)
    assert back == p  # ancestors (host chains) included
    assert back.to_json() == text
    assert back.waves() == p.waves()
    assert back.structure_hash() == p.structure_hash()
    data = json.loads(text)
    assert data["outputs"] == {"first_db": {"get_attribute": ["db", "ip"]}}
    assert set(data) == {"blueprint_path", "nodes", "instances", "outputs", "next_ids"}


def test_structure_hash_follows_instances_and_relationships_not_properties(plan):
    base = """
        inputs:
          n: {type: integer, default: 1}
          ip: {type: string, default: 10.0.0.1}
        node_templates:
          vm:
            type: orchestrator.nodes.Compute
            instances: {get_input: n}
            properties: {ip: {get_input: ip}}
          app:
            type: orchestrator.nodes.Root
            relationships: [{type: orchestrator.relationships.RELATIONSHIP, target: vm}]
    """
    depends = base.replace("RELATIONSHIP", "depends_on")
    reference = plan(depends).structure_hash()
    assert plan(depends, {"ip": "10.9.9.9"}).structure_hash() == reference
    assert plan(depends, {"n": 2}).structure_hash() != reference
    assert plan(base.replace("RELATIONSHIP", "connected_to")).structure_hash() != reference
    assert plan(depends.replace("relationships: [{type: orchestrator.relationships.depends_on, target: vm}]",
                                "relationships: []")).structure_hash() != reference


def test_waves_are_graphlibs_static_order_cut_by_longest_chain_of_targets():
    """Plan.waves is done with plain lists; it must give what graphlib's order gave, wave by wave."""
    import graphlib
    import random
    from types import SimpleNamespace

    def by_graphlib(instances):
        level, waves, sorter = {}, [], graphlib.TopologicalSorter()
        for inst in instances.values():
            sorter.add(inst.id, *inst.targets)
        for iid in sorter.static_order():
            n = max((level[t] + 1 for t in instances[iid].targets), default=0)
            level[iid] = n
            if n == len(waves):
                waves.append([])
            waves[n].append(iid)
        return waves

    rng = random.Random(7)
    for _ in range(200):
        ids = [f"i{k}" for k in range(rng.randint(1, 40))]
        rank = {iid: k for k, iid in enumerate(ids)}  # targets come earlier in this order: a DAG
        instances = {}
        for iid in rng.sample(ids, len(ids)):  # inserted in another order
            earlier = [t for t in ids if rank[t] < rank[iid]]
            targets = rng.sample(earlier, min(len(earlier), rng.randint(0, 3)))
            if targets and rng.random() < 0.2:
                targets.append(targets[0])  # two relationships to one target
            instances[iid] = SimpleNamespace(id=iid, targets=targets)
        plan = Plan.__new__(Plan)
        plan.instances = instances
        assert plan.waves() == by_graphlib(instances)
