"""Cloudify blueprints read as Cloudify's parser (PyYAML's pure-Python loader) reads them."""

from __future__ import annotations

from typing import Any


def test_a_flow_mapping_without_a_space_after_its_colon_reads_as_cloudify_reads_it(cload: Any) -> None:
    # libyaml refuses "{concat:[...]}"; PyYAML's own parser, Cloudify's, reads a mapping (Azure examples).
    bp = cload("""
        inputs:
          p: {default: x}
        node_templates:
          n: {type: cloudify.nodes.Root}
        outputs:
          o: {value: {concat:[{get_input: p},nsg]}}
        """)
    assert bp.outputs["o"].value == "xnsg"


def test_a_real_syntax_error_is_still_one_where_it_is(cproblems: Any) -> None:
    problems = cproblems("""
        node_templates:
          n: {type: cloudify.nodes.Root
        """)
    assert len(problems) == 1 and "YAML syntax error: did not find expected" in problems[0], problems


def test_an_inline_script_is_refused_as_a_script_not_as_a_plugin_task(cproblems: Any) -> None:
    problems = cproblems("""
        node_templates:
          n:
            type: cloudify.nodes.Root
            interfaces:
              cloudify.interfaces.lifecycle:
                create: |
                  from cloudify import ctx
                  ctx.logger.info('hello')
        """)
    assert len(problems) == 1 and problems[0].endswith(
        "not supported: node template 'n': operation 'lifecycle.create' is a script written in the blueprint "
        "('from cloudify import ctx' ...) (orchestrator runs plugin hooks, not scripts on hosts)"), problems


def test_a_plugin_import_with_properties_is_refused_for_them_and_its_types_still_known(cproblems: Any) -> None:
    problems = cproblems("""
        tosca_definitions_version: cloudify_dsl_1_5
        imports:
          - cloudify/types/types.yaml
          - plugin:cloudify-aws-plugin:
              region_name: us-east-2
        node_templates:
          vpc:
            type: cloudify.nodes.aws.ec2.Vpc
            properties: {resource_config: {CidrBlock: 10.0.0.0/16}}
        """)
    assert problems == ["main.yaml:4:5: not supported: properties of the import 'plugin:cloudify-aws-plugin' (plugin "
                        "properties, DSL 1.5): give them to the node templates that need them"], problems


def test_an_import_not_available_says_so_once_and_not_what_it_may_have_declared(cproblems: Any) -> None:
    problems = cproblems("""
        tosca_definitions_version: cloudify_dsl_1_4
        imports:
          - cloudify/types/types.yaml
          - plugin:cloudify-openstack-plugin
        node_types:
          my.Server: {derived_from: cloudify.openstack.nodes.Server}
        node_templates:
          vm: {type: my.Server, properties: {image: ubuntu, flavor: {get_property: [keypair, size]}}}
          app:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.contained_in, target: host_from_the_import}]
        outputs:
          ip: {value: {get_attribute: [server_from_the_import, ip]}}
        """)
    assert problems == ["main.yaml:4:5: not available offline: plugin:cloudify-openstack-plugin (no installed "
                        "orchestrator plugin ships it; nothing is downloaded)"], problems


def test_without_a_missing_import_the_same_mistakes_are_all_said(cproblems: Any) -> None:
    problems = cproblems("""
        node_templates:
          app:
            type: cloudify.nodes.Root
            relationships: [{type: cloudify.relationships.contained_in, target: host_nowhere}]
        outputs:
          ip: {value: {get_attribute: [server_nowhere, ip]}}
        """)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "node template 'app': relationship 1: target 'host_nowhere' is not a node template",
        "output 'ip': get_attribute of unknown node template 'server_nowhere'"], problems


def test_a_local_import_that_does_not_exist_holds_back_the_same(cproblems: Any) -> None:
    problems = cproblems("""
        tosca_definitions_version: cloudify_dsl_1_4
        imports: [cloudify/types/types.yaml, types/k8s.yaml]
        node_types:
          my.Autoscaling: {derived_from: k8s.CustomResource}
        node_templates:
          n: {type: my.Autoscaling, properties: {definition: {}}}
        """)
    assert problems == ["main.yaml:2:38: imported file 'types/k8s.yaml' does not exist"], problems
