"""Cloudify's scaling groups: members replicated per group instance, relationships among the
members of one group instance kept inside it (as Cloudify's dsl_parser plans them)."""

from __future__ import annotations

import collections
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from orchestrator.deployments import Orchestrator
from orchestrator.plan import Plan, build_plan

VM_AND_IP = """
    node_templates:
      host:
        type: cloudify.nodes.Compute
        properties: {agent_config: {install_method: none}}
        relationships:
          - {type: cloudify.relationships.connected_to, target: ip}
      db:
        type: cloudify.nodes.Root
        relationships:
          - {type: cloudify.relationships.contained_in, target: host}
      ip: {type: cloudify.nodes.Root}
      volume:
        type: cloudify.nodes.Root
        instances: {deploy: 2}
        relationships:
          - {type: cloudify.relationships.connected_to, target: host}
      lb:
        type: cloudify.nodes.Root
        relationships:
          - {type: cloudify.relationships.connected_to, target: host}
    groups:
      vm_with_resources: {members: [host, ip, volume]}
    policies:
      scale:
        type: cloudify.policies.scaling
        properties: {default_instances: 2}
        targets: [vm_with_resources]
    """


def plan_of(cload: Any, text: str) -> Plan:
    return build_plan(cload(text))


def counts(plan: Plan) -> dict[str, int]:
    return dict(collections.Counter(i.node for i in plan.instances.values()))


def targets(plan: Plan, iid: str, target_node: str) -> list[str]:
    return [r.target_id for r in plan.instances[iid].relationships if r.target_node == target_node]


def group_of(plan: Plan, iid: str, group: str) -> str:
    return plan.instances[iid].ancestors[group]


def test_members_scale_together_and_relate_within_their_group_instance(cload: Any) -> None:
    plan = plan_of(cload, VM_AND_IP)
    assert counts(plan) == {"host": 2, "db": 2, "ip": 2, "volume": 4, "lb": 1, "vm_with_resources": 2}
    for host in ("host_0", "host_1"):  # each VM gets the IP of its own group instance
        (ip,) = targets(plan, host, "ip")
        assert group_of(plan, ip, "vm_with_resources") == group_of(plan, host, "vm_with_resources")
    for volume in (i for i, inst in plan.instances.items() if inst.node == "volume"):
        (host,) = targets(plan, volume, "host")  # two volumes per group instance, each on its VM
        assert group_of(plan, host, "vm_with_resources") == group_of(plan, volume, "vm_with_resources")
    assert sorted(targets(plan, "lb_0", "host")) == ["host_0", "host_1"]  # from outside: every member
    assert plan.nodes["vm_with_resources"].type == "orchestrator.nodes.Root"  # no operations of its own


def test_nested_groups_multiply_and_keep_relationships_in_the_outer_group_instance(cload: Any) -> None:
    plan = plan_of(cload, """
        node_templates:
          host:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.connected_to, target: ip}]
          db:
            type: cloudify.nodes.Root
            instances: {deploy: 3}
            relationships:
              - {type: cloudify.relationships.contained_in, target: host}
              - {type: cloudify.relationships.connected_to, target: volume}
          ip: {type: cloudify.nodes.Root}
          volume:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.connected_to, target: host}]
        groups:
          vm_with_resources: {members: [host, ip, volume_scale_group]}
          volume_scale_group: {members: [volume]}
        policies:
          outer: {type: cloudify.policies.scaling, properties: {default_instances: 2}, targets: [vm_with_resources]}
          inner: {type: cloudify.policies.scaling, properties: {default_instances: 5}, targets: [volume_scale_group]}
        """)
    assert {k: v for k, v in counts(plan).items() if not k.endswith("group") and k != "vm_with_resources"} == \
        {"host": 2, "db": 6, "ip": 2, "volume": 10}
    for db in (i for i, inst in plan.instances.items() if inst.node == "db"):
        volumes = targets(plan, db, "volume")  # the five volumes of its own VM's group instance
        assert len(volumes) == 5
        assert {group_of(plan, v, "vm_with_resources") for v in volumes} == {group_of(plan, db, "vm_with_resources")}


def test_a_group_of_contained_members_scales_them_per_host(cload: Any) -> None:
    # Its members live on a host outside the group: the count multiplies theirs, per host.
    plan = plan_of(cload, """
        node_templates:
          host: {type: cloudify.nodes.Root, instances: {deploy: 2}}
          db:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.contained_in, target: host}]
        groups:
          dbs: {members: [db]}
        policies:
          scale: {type: cloudify.policies.scaling, properties: {default_instances: 3}, targets: [dbs]}
        """)
    assert counts(plan) == {"host": 2, "db": 6}


THREE_NODES = """
        node_templates:
          vm: {type: cloudify.nodes.Root}
          ip: {type: cloudify.nodes.Root}
          disk:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.contained_in, target: vm}]"""  # lines 3-8 of main.yaml
TOO_MANY = """
        policies:
          scale:
            type: cloudify.policies.scaling
            properties: {default_instances: 5, max_instances: 3}
            targets: [mixed]
        """


def test_groups_no_policy_scales_are_labels_cloudify_does_not_check(cload: Any) -> None:
    # Shared members, members on several hosts, even a cycle: only scaling groups must be units.
    bp = cload(THREE_NODES + """
        groups:
          all: {members: [ip, disk]}
          hosted: {members: [disk]}
          a: {members: [b]}
          b: {members: [a]}
        """)
    assert set(bp.templates) >= {"vm", "ip", "disk"}


def test_what_cloudify_refuses_is_refused_where_it_is_written(cproblems: Any) -> None:
    lines = cproblems(THREE_NODES + """
        groups:
          vm: {members: [ip]}
          pair: {members: [ip, nope]}
        policies:
          scale: {type: cloudify.policies.scaling, properties: {default_instances: 2}, targets: [pair, vm]}
        """)
    assert lines == [
        "main.yaml:10:3: group 'vm' has the name of a node template; give it another",
        "main.yaml:11:20: group 'pair': 'ip' is a member of group 'vm' already (a template or group belongs to "
        "one group)",
        "main.yaml:11:24: group 'pair': member 'nope' is neither a node template nor a group",
    ], lines
    lines = cproblems(THREE_NODES + """
        groups:
          mixed: {members: [ip, disk]}
          a: {members: [b]}
          b: {members: [a]}""" + TOO_MANY.replace("targets: [mixed]", "targets: [mixed, a, b]"))
    assert lines == [
        "main.yaml:11:3: group 'a' contains itself: a -> b -> a",
        "main.yaml:16:17: policy 'scale': default_instances is above max_instances",  # checked all the same
    ], lines
    lines = cproblems(THREE_NODES + """
        groups:
          mixed: {members: [ip, disk]}""" + TOO_MANY)
    assert lines == [
        "main.yaml:10:3: group 'mixed': its members must all be contained in the same node template, or all in "
        "none (they are in none, 'vm')",
        "main.yaml:14:17: policy 'scale': default_instances is above max_instances",
    ], lines


def test_instance_bounds_are_checked(cproblems: Any) -> None:
    lines = cproblems("""
        node_templates:
          vm: {type: cloudify.nodes.Root}
        groups:
          g: {members: [vm]}
        policies:
          scale:
            type: cloudify.policies.scaling
            properties: {default_instances: 5, max_instances: 3}
            targets: [g]
        """)
    assert lines == ["main.yaml:10:17: policy 'scale': default_instances is above max_instances"], lines


def test_scale_and_remove_a_group_instance_through_the_cli(cwrite: Any, tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120)

    path = cwrite(VM_AND_IP)
    state = str(tmp_path / "state.db")
    assert cli("install", str(path), "--state", state).returncode == 0
    assert cli("scale", "--state", state, "vm_with_resources=3", "--yes").returncode == 0
    status = json.loads(cli("status", "--state", state, "--json").stdout)
    assert counts_of(status) == {"host": 3, "db": 3, "ip": 3, "volume": 6, "lb": 1, "vm_with_resources": 3}
    gone = cli("scale", "--state", state, "--remove", "vm_with_resources_0", "--yes")
    assert gone.returncode == 0, gone.stderr
    status = json.loads(cli("status", "--state", state, "--json").stdout)
    left = {i["instance"] for i in status["instances"]}
    assert "host_0" not in left and "ip_0" not in left and "volume_0" not in left and "volume_1" not in left
    assert counts_of(status) == {"host": 2, "db": 2, "ip": 2, "volume": 4, "lb": 1, "vm_with_resources": 2}
    plan = Orchestrator(state_path=state).status()[1]
    assert sorted(targets(plan, "lb_0", "host")) == ["host_1", "host_2"]


def counts_of(status: dict[str, Any]) -> dict[str, int]:
    return dict(collections.Counter(i["node"] for i in status["instances"]))


def test_a_group_count_may_come_from_an_input(cload: Any) -> None:
    text = """
        inputs:
          vms: {type: integer, default: 2}
        node_templates:
          vm: {type: cloudify.nodes.Root}
          ip:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.connected_to, target: vm}]
        groups:
          pair: {members: [vm, ip]}
        policies:
          scale:
            type: cloudify.policies.scaling
            properties: {default_instances: {get_input: vms}, max_instances: 10}
            targets: [pair]
        """
    assert counts(build_plan(cload(text, {"vms": 3}))) == {"vm": 3, "ip": 3, "pair": 3}
    assert counts(plan_of(cload, text)) == {"vm": 2, "ip": 2, "pair": 2}
