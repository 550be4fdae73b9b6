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
