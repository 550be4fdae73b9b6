"""Peer conformance: blueprints Cloudify's own parser rejects are rejected here too.

Each case is a negative test of ``dsl_parser`` (cloudify-cosmo/cloudify-common,
``dsl_parser/tests/``, commit ``SOURCE_COMMIT``), for a feature orchestrator supports,
with its blueprint as that test writes it (the version line and our ``types.yaml``
import added where the test relies on its harness for them). Cloudify answers with a
``DSLParsingLogicException`` error code; we must exit 2 with a ``FILE:LINE:COL``
problem saying the same thing. ``docs/cloudify-conformance.md`` lists them all (a test
below keeps that table and this list in step).
"""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SOURCE_COMMIT = "828327a291ae86e794c4c3cab6268cf0bb3d896c"
DOC = Path(__file__).parents[2] / "docs" / "cloudify-conformance.md"
V = "tosca_definitions_version: cloudify_dsl_1_3\n"
TYPES = "imports: [cloudify/types/types.yaml]\n"
NODE = "node_templates:\n  test_node:\n    type: test_type\n    properties:\n      key: val\n"
TYPE = "node_types:\n  test_type:\n    properties:\n      key: {}\n"

# (dsl_parser test (file::function), Cloudify's error code, blueprint, what our problem says)
def _grouped(groups: dict[str, list[str]], nodes: dict[str, str | None], properties: str = "") -> str:
    """The blueprint of Cloudify's scaling tests (``base_blueprint``): one node type, templates
    (some contained in others), groups, and one scaling policy on every group."""
    text = V + "node_types:\n  type: {}\nrelationships:\n  cloudify.relationships.contained_in: {}\nnode_templates:\n"
    for node, host in nodes.items():
        text += f"  {node}:\n    type: type\n"
        if host:
            text += f"    relationships:\n      - {{type: cloudify.relationships.contained_in, target: {host}}}\n"
    text += "groups:\n" + "".join(f"  {g}:\n    members: [{', '.join(m)}]\n" for g, m in groups.items())
    text += f"policies:\n  policy:\n    type: cloudify.policies.scaling\n    targets: [{', '.join(groups)}]\n"
    return text + (f"    properties: {{{properties}}}\n" if properties else "")


SCALING = "scaling/test_scaling_policies_and_groups::"
CASES: list[tuple[str, str, str, str]] = [
    ("test_parser_logic_exceptions::test_no_type_definition", "7", V + NODE,
     "unknown node type 'test_type'"),
    ("test_parser_logic_exceptions::test_type_derive_non_from_none_existing", "ERROR_UNKNOWN_TYPE",
     V + NODE + "node_types:\n  test_type:\n    derived_from: non_existing_type_parent\n",
     "derives from unknown node type 'non_existing_type_parent'"),
    ("test_parser_logic_exceptions::test_import_bad_path", "13", V + "imports:\n  - fake-file.yaml\n",
     "imported file 'fake-file.yaml' does not exist"),
    ("test_parser_logic_exceptions::test_cyclic_dependency", "100",
     V + NODE + "node_types:\n  test_type: {derived_from: test_type_parent}\n"
     "  test_type_parent: {derived_from: test_type_grandparent}\n"
     "  test_type_grandparent: {derived_from: test_type}\n", "derives from itself: test_type -> test_type_parent"),
    ("test_parser_logic_exceptions::test_explicit_interface_with_missing_plugin", "10",
     V + NODE + "node_types:\n  test_type:\n    properties: {key: {}}\n    interfaces:\n      test_interface1:\n"
     "        install: {implementation: missing_plugin.install, inputs: {}}\n",
     "not supported: node template 'test_node': operation 'test_interface1.install' is a task of plugin "
     "'missing_plugin'"),
    ("test_parser_logic_exceptions::test_top_level_relationships_circular_inheritance", "100",
     V + TYPES + TYPE + NODE + "relationships:\n  test_relationship1: {derived_from: test_relationship2}\n"
     "  test_relationship2: {derived_from: test_relationship3}\n"
     "  test_relationship3: {derived_from: test_relationship1}\n", "derives from itself"),
    ("test_parser_logic_exceptions::test_instance_relationships_bad_target_value", "25",
     V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n    properties: {key: v}\n    relationships:\n"
     "      - {type: test_relationship, target: fake_node}\nrelationships:\n  test_relationship: {}\n",
     "fake_node"),
    ("test_parser_logic_exceptions::test_instance_relationships_bad_type_value", "26",
     V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n    properties: {key: v}\n    relationships:\n"
     "      - {type: fake_relationship, target: test_node}\nrelationships:\n  test_relationship: {}\n",
     "unknown relationship type 'fake_relationship'"),
    ("test_parser_logic_exceptions::test_instance_relationships_same_source_and_target", "23",
     V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n    properties: {key: v}\n    relationships:\n"
     "      - {type: test_relationship, target: test_node2}\nrelationships:\n  test_relationship: {}\n",
     "itself"),
    ("test_parser_logic_exceptions::test_node_set_non_existing_property", "ERROR_UNDEFINED_PROPERTY",
     V + NODE + "node_types:\n  test_type: {}\n", "unknown property 'key'"),
    ("test_parser_logic_exceptions::test_node_doesnt_implement_schema_mandatory_property",
     "ERROR_MISSING_PROPERTY", V + NODE + "node_types:\n  test_type:\n    properties:\n      key: {}\n"
     "      mandatory: {}\n", "missing required property 'mandatory'"),
    ("test_parser_logic_exceptions::test_relationship_instance_set_non_existing_property",
     "ERROR_UNDEFINED_PROPERTY", V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n"
     "    properties: {key: v}\n    relationships:\n      - type: test_relationship\n        target: test_node\n"
     "        properties: {do_not_exist: some_value}\nrelationships:\n  test_relationship: {}\n",
     "unknown property 'do_not_exist'"),
    ("test_parser_logic_exceptions::test_relationship_instance_doesnt_implement_schema_mandatory_property",
     "ERROR_MISSING_PROPERTY", V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n"
     "    properties: {key: v}\n    relationships:\n      - {type: test_relationship, target: test_node}\n"
     "relationships:\n  test_relationship:\n    properties: {should_implement: {}}\n",
     "missing required property 'should_implement'"),
    ("test_parser_logic_exceptions::test_instance_relationship_more_than_one_contained_in", "112",
     V + TYPES + TYPE + NODE + "  test_node2:\n    type: test_type\n    properties: {key: v}\n    relationships:\n"
     "      - {type: cloudify.relationships.contained_in, target: test_node}\n"
     "      - {type: derived_from_contained_in, target: test_node}\nrelationships:\n"
     "  derived_from_contained_in: {derived_from: cloudify.relationships.contained_in}\n", "contained_in"),
    ("test_parser_logic_exceptions::test_missing_required_property", "ERROR_MISSING_PROPERTY",
     V + "node_types:\n  type:\n    properties:\n      property: {required: true}\n"
     "node_templates:\n  node: {type: type}\n", "missing required property 'property'"),
    ("test_parser_logic_exceptions::test_bad_constraint_argument", "212",
     V + "inputs:\n  some_input:\n    default: x\n    constraints:\n      - max_length: some_string\n",
     "max_length"),
    ("test_parser_logic_exceptions::test_unsupported_version", "29",
     "tosca_definitions_version: unsupported_version\n" + NODE + TYPE,
     "unsupported tosca_definitions_version 'unsupported_version'"),
    ("test_parser_logic_exceptions::test_parse_wrong_dsl_version_format", "29",
     "tosca_definitions_version: cloudify_dsl_1.0\n" + NODE + TYPE,
     "unsupported tosca_definitions_version 'cloudify_dsl_1.0'"),
    ("test_parser_logic_exceptions::test_properties_schema_invalid_values_for_types", "50",
     V + "node_types:\n  test_type:\n    properties:\n      int1: {type: integer, default: 1.5}\n"
     "node_templates:\n  n: {type: test_type}\n", "default of property 'int1': expected integer"),
    ("test_inputs::test_validate_integer_value_mismatch", "ERROR_VALUE_DOES_NOT_MATCH_TYPE",
     V + "inputs:\n  some_input:\n    type: integer\n    default: []\n",
     "default of input 'some_input': expected integer"),
    ("test_inputs::test_missing_input", "MissingRequiredInputError",
     V + "inputs:\n  port: {}\n  name_i: {}\n  name_j: {}\nnode_types:\n  webserver_type:\n    properties:\n"
     "      port: {}\n      name: {}\n      name2: {}\nnode_templates:\n  webserver:\n    type: webserver_type\n"
     "    properties:\n      port: {get_input: port}\n      name: {get_input: name_i}\n"
     "      name2: {get_input: [name_j, attr1, 0]}\n", "input 'name_i' is required but was not given"),
    ("test_inputs::test_constraints_not_successful_with_default", "ConstraintException",
     V + "inputs:\n  some_input:\n    default: hi\n    constraints:\n      - max_length: 1\n"
     "      - min_length: 2\n      - valid_values: ['hi']\n      - length: 2\n      - pattern: 'hi'\n",
     "default of input 'some_input'"),
    ("test_functions::test_illegal_property_in_property", "FunctionEvaluationError",
     V + "node_types:\n  vm_type:\n    properties:\n      a: {type: string}\nnode_templates:\n  vm:\n"
     "    type: vm_type\n    properties:\n      a: {get_property: [SELF, notfound]}\n", "notfound"),
    ("test_functions::test_unknown_ref", "KeyError",
     V + "node_types:\n  vm_type:\n    properties: {}\nnode_templates:\n  vm:\n    type: vm_type\n"
     "outputs:\n  a:\n    value: {get_attribute: [i_do_not_exist, aaa]}\n", "i_do_not_exist"),
    ("test_functions::test_circular_within_dict", "EvaluationRecursionLimitReached",
     V + "node_types:\n  some_type:\n    properties:\n      prop: {}\nnode_templates:\n  some_node:\n"
     "    type: some_type\n    properties:\n      prop:\n        key:\n          get_property:\n"
     "            - get_property: [some_node, prop]\n            - shouldn't matter\n", "get_property takes"),
    ("test_data_types::test_unknown_type", "ERROR_UNKNOWN_TYPE",
     V + TYPES + TYPE + NODE + "data_types:\n  pair_type:\n    properties:\n      first:\n"
     "        type: unknown-type\n      second: {}\n", "unknown-type"),
    ("test_data_types::test_nested_validation", "ERROR_VALUE_DOES_NOT_MATCH_TYPE",
     "tosca_definitions_version: cloudify_dsl_1_2\nnode_templates:\n  n_template:\n    type: n_type\n"
     "    properties:\n      n_pair:\n        second:\n          first: 4\n          second: invalid_type_value\n"
     "node_types:\n  n_type:\n    properties:\n      n_pair:\n        type: pair_of_pairs_type\n"
     "data_types:\n  pair_type:\n    properties:\n      first: {}\n      second:\n        type: integer\n"
     "  pair_of_pairs_type:\n    properties:\n      first:\n        type: pair_type\n        default:\n"
     "          first: 1\n          second: 2\n      second:\n        type: pair_type\n",
     "expected integer, got string 'invalid_type_value'"),
    ("scaling/test_scaling_policies_and_groups::test_non_group_target", "ERROR_NON_GROUP_TARGET",
     V + TYPES + "node_templates:\n  node: {type: cloudify.nodes.Root}\n"
     "policies:\n  policy:\n    type: cloudify.policies.scaling\n    targets: [node]\n",
     "target 'node' is not a group"),
    (SCALING + "test_validate_no_group_cycles1", "ERROR_GROUP_CYCLE",
     _grouped({"group1": ["group2"], "group2": ["group1"]}, {"node": None}), "contains itself: group1 -> group2"),
    (SCALING + "test_validate_node_type_group_members_in_one_group_only", "ERROR_MULTIPLE_GROUPS",
     _grouped({"group1": ["node"], "group2": ["node"]}, {"node": None}), "'node' is a member of group 'group1'"),
    (SCALING + "test_validate_group_type_group_members_in_one_group_only", "ERROR_MULTIPLE_GROUPS",
     _grouped({"group1": ["node"], "group2": ["group1"], "group3": ["group1"]}, {"node": None}),
     "'group1' is a member of group 'group2'"),
    (SCALING + "test_validate_non_contained_group_members1", "ERROR_NON_CONTAINED_GROUP_MEMBERS",
     _grouped({"group": ["node2", "node3"]}, {"node1": None, "node2": "node1", "node3": None}),
     "its members must all be contained in the same node template"),
    (SCALING + "test_validate_group_and_node_template_same_name", "ERROR_GROUP_AND_NODE_TEMPLATE_SAME_NAME",
     _grouped({"node1": ["node2"]}, {"node1": None, "node2": None}), "has the name of a node template"),
    (SCALING + "test_invalid_default_instances_value", "ERROR_INVALID_INSTANCES",
     _grouped({"group": ["node"]}, {"node": None}, "default_instances: -1"), "default_instances is below 0"),
    (SCALING + "test_invalid_max_instances_value", "ERROR_INVALID_INSTANCES",
     _grouped({"group": ["node"]}, {"node": None}, "max_instances: 0"), "max_instances is below 1"),
    (SCALING + "test_min_instances_greater_than_max_instances", "ERROR_INVALID_INSTANCES",
     _grouped({"group": ["node"]}, {"node": None}, "min_instances: 5, max_instances: 1"),
     "min_instances is above max_instances"),
    ("test_parser_logic_exceptions::test_top_level_relationships_import_same_name_relationship", "4",
     None, "relationships entry 'test_relationship' is defined"),  # two files: written by the test
]
IDS = [c[0] for c in CASES]


def _blueprint(case: tuple[str, str, str | None, str], tmp_path: Path) -> Path:
    _name, _code, text, _ = case
    if text is None:  # the import case: an imported file defines the same relationship again
        (tmp_path / "imported.yaml").write_text(V + TYPES + TYPE + "relationships:\n  test_relationship: {}\n")
        text = V + "imports: [imported.yaml]\n" + NODE + "relationships:\n  test_relationship:\n" \
            "    properties: {other: {default: 1}}\n"
    path = tmp_path / "blueprint.yaml"
    path.write_text(textwrap.dedent(text))
    return path


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_cloudify_rejects_it_and_so_do_we(case: tuple[str, str, str, str], tmp_path: Path) -> None:
    path = _blueprint(case, tmp_path)
    given = ["-i", "port=8080"] if case[0] == "test_inputs::test_missing_input" else []  # as the test gives
    result = subprocess.run([sys.executable, "-m", "orchestrator", "validate", str(path), *given], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert "Traceback" not in result.stderr
    assert result.returncode == 2, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if re.match(r"^\S+:\d+:\d+: ", line)]
    assert any(case[3] in line for line in lines), result.stderr


def test_the_table_in_the_docs_lists_every_case() -> None:
    text = DOC.read_text()
    missing = [name for name in IDS if f"`{name.split(' (')[0]}`" not in text]
    assert not missing, missing
    assert SOURCE_COMMIT in text
