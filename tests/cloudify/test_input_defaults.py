"""``get_input`` in input defaults: Cloudify allows it, our own dialect does not."""

from __future__ import annotations

from typing import Any

NODE = "node_templates:\n          n: {type: cloudify.nodes.Root}\n"  # after the closing line's 8 spaces


def test_a_default_names_other_inputs(cload: Any) -> None:
    bp = cload("""
        inputs:
          region: {default: eu-west-1}
          zone: {default: {concat: [{get_input: region}, b]}}
          conf: {default: {region: {get_input: region}, zone: {get_input: zone}}}
          first: {default: {get_input: [conf, region]}}
        """ + NODE)
    assert bp.input_values["conf"]["region"] == "eu-west-1"
    assert bp.input_values["zone"] == {"concat": ["eu-west-1", "b"]}
    assert bp.input_values["first"] == "eu-west-1"


def test_a_given_value_wins_and_reaches_defaults_naming_it(cload: Any) -> None:
    bp = cload("""
        inputs:
          zone: {default: {get_input: region}}
          region: {default: eu-west-1}
        """ + NODE, {"region": "us-east-2"})
    assert bp.input_values["zone"] == "us-east-2"


def test_cycle_is_reported_with_its_chain(cproblems: Any) -> None:
    lines = cproblems("""
        inputs:
          a: {default: {get_input: b}}
          b: {default: {get_input: c}}
          c: {default: [{get_input: a}]}
        """ + NODE)
    assert len(lines) == 1, lines
    assert lines == ["main.yaml:6:18: default of input 'c': get_input cycle among input defaults: a -> b -> c -> a"]


def test_self_reference_and_undeclared(cproblems: Any) -> None:
    lines = cproblems("""
        inputs:
          a: {default: {get_input: a}}
          b: {default: {get_input: regoin}}
          region: {default: x}
        """ + NODE)
    assert any(":4:17: default of input 'a': get_input cycle among input defaults: a -> a" in x for x in lines), lines
    assert any(":5:17: default of input 'b': get_input of undeclared input 'regoin' (did you mean 'region'?)" in x
               for x in lines), lines


def test_a_required_input_named_by_a_default_is_reported_once(cproblems: Any) -> None:
    lines = cproblems("""
        inputs:
          region: {type: string}
          zone: {default: {get_input: region}}
        """ + NODE)
    assert lines == ["main.yaml:4:3: input 'region' is required but was not given (use -i region=VALUE)"]


def test_our_dialect_still_refuses_it(tmp_path: Any, monkeypatch: Any) -> None:
    from orchestrator.deployments import Orchestrator
    from orchestrator.dsl import BlueprintError
    from orchestrator.plugins import get_plugin_manager

    monkeypatch.chdir(tmp_path)
    (tmp_path / "bp.yaml").write_text("inputs:\n  a: {default: x}\n  b: {default: {get_input: a}}\n"
                                      "node_templates:\n  n: {type: orchestrator.nodes.Root}\n")
    try:
        Orchestrator(pm=get_plugin_manager(entry_points=False)).load(tmp_path / "bp.yaml", None)
    except BlueprintError as exc:
        assert "get_input cannot be used in an input" in str(exc.problems[0])
    else:
        raise AssertionError("accepted")


def test_a_default_built_with_concat_reaches_properties_and_outputs_evaluated(cload: Any) -> None:
    # blueprint-examples' availability_zone: {concat: [{get_input: region_name}, b]}, used by get_input
    bp = cload("""
        inputs:
          region: {default: eu-west-1}
          zone: {default: {concat: [{get_input: region}, b]}}
        node_types:
          zoned: {derived_from: cloudify.nodes.Root, properties: {zone: {}}}
        node_templates:
          n: {type: zoned, properties: {zone: {get_input: zone}}}
        """)
    assert bp.templates["n"].values["zone"] == "eu-west-1b"


def test_a_secret_named_by_an_input(cload: Any, cproblems: Any) -> None:
    bp = cload("""
        inputs:
          which: {default: db_password}
        node_templates:
          n: {type: cloudify.nodes.Root}
        outputs:
          o: {value: {get_secret: {get_input: which}}}
          p: {value: {get_secret: [{get_input: which}, user]}}
        """)
    assert bp.outputs["o"].value == {"get_secret": "db_password"}
    assert bp.outputs["p"].value == {"get_secret": ["db_password", "user"]}
    assert "db_password" in bp.secret_names
    problems = cproblems("""
        node_templates:
          n: {type: cloudify.nodes.Root}
        outputs:
          o: {value: {get_secret: {get_attribute: [n, name]}}}
        """)
    assert problems == ["main.yaml:6:27: not supported: output 'o': get_secret of a name known only at run time"]


def test_a_manager_input_type_is_refused_once_with_none_of_its_constraints(cproblems: Any) -> None:
    problems = cproblems("""
        inputs:
          other:
            type: deployment_id
            default: d1
            constraints: [{name_pattern: {contains: db}}, {filter_id: f}, {labels: [{env: prod}]}]
        node_templates:
          n: {type: cloudify.nodes.Root}
        """)
    assert problems == ["main.yaml:5:11: not supported: input 'other' of type 'deployment_id' (it names something a "
                        "Cloudify manager holds)"], problems
