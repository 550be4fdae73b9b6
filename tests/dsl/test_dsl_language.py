"""What valid blueprints mean: imports, inheritance, data types, functions, YAML 1.2 scalars."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.dsl import loader, yaml_source
from orchestrator.dsl.model import MISSING

TYPES = """
data_types:
  my.Port:
    properties:
      number: {type: integer}
      protocol: {type: string, default: tcp}
  my.Endpoint:
    properties:
      host: {type: string, default: localhost}
      port: {type: my.Port, default: {number: 80}}
node_types:
  my.Base:
    derived_from: orchestrator.nodes.Root
    properties:
      size:
        type: string
        default: small
        description: how big
        constraints: [{valid_values: [small, medium, large]}]
      endpoint: {type: my.Endpoint, required: false}
      endpoints: {type: list, entry_schema: my.Endpoint, required: false}
      by_name: {type: dict, entry_schema: my.Endpoint, required: false}
      anything: {required: false}
  my.Child:
    derived_from: my.Base
    properties:
      size: {default: large}
"""


# ---------------------------------------------------------------- imports


def test_imports_are_relative_to_the_importing_file_and_read_once(write, load, monkeypatch):
    write("types/common.yaml", """
        node_types:
          lib.Common: {derived_from: orchestrator.nodes.Root}
        imports: [../types/servers.yaml]
    """)
    write("types/servers.yaml", """
        imports: [common.yaml]          # a cycle back: fine
        node_types:
          lib.Server: {derived_from: orchestrator.nodes.Compute}
    """)
    write("apps/app.yaml", """
        imports: [../types/common.yaml]
        node_types:
          lib.App: {derived_from: lib.Common}
    """)
    main = write("main.yaml", """
        imports:
          - types/servers.yaml
          - apps/app.yaml
          - ./types/common.yaml
        node_templates:
          vm: {type: lib.Server}
          app: {type: lib.App}
    """)
    reads: list[str] = []
    real = loader.read_yaml_file

    def counting(path, display, problems, **options):
        reads.append(Path(path).resolve().relative_to(main.parent).as_posix())
        return real(path, display, problems, **options)

    monkeypatch.setattr(loader, "read_yaml_file", counting)
    bp = load(main)
    assert sorted(reads) == ["apps/app.yaml", "main.yaml", "types/common.yaml", "types/servers.yaml"]
    assert bp.node_types["lib.App"].hierarchy == ["orchestrator.nodes.Root", "lib.Common", "lib.App"]
    assert bp.templates["vm"].hierarchy[-1] == "lib.Server"


def test_identical_definitions_in_two_imports_are_not_a_conflict(write, load):
    for name in ("a.yaml", "b.yaml"):
        write(name, """
            inputs:
              region: {type: string, default: eu}
            node_types:
              lib.Server: {derived_from: orchestrator.nodes.Compute}
        """)
    bp = load("""
        imports: [a.yaml, b.yaml]
        node_templates:
          vm: {type: lib.Server}
    """)
    assert bp.input_values == {"region": "eu"}


# ---------------------------------------------------------------- types and data types


def test_derived_property_overrides_only_the_keys_it_states(load):
    bp = load(TYPES + """
node_templates:
  child: {type: my.Child}
  base: {type: my.Base}
""")
    size = bp.node_types["my.Child"].properties["size"]
    assert (size.type, size.default, size.description) == ("string", "large", "how big")
    assert [c.name for c in size.constraints] == ["valid_values"]
    assert bp.node_types["my.Base"].properties["size"].default == "small"
    assert bp.templates["child"].values["size"] == "large"
    assert bp.templates["base"].values["size"] == "small"


def test_inherited_constraint_applies_to_the_child(problems):
    assert problems(TYPES + """
node_templates:
  child: {type: my.Child, properties: {size: huge}}
""") == [
        "main.yaml:29:46: node template 'child': property 'size': 'huge' is not one of the valid values:"
        " 'small', 'medium', 'large'",
    ]


def test_data_type_defaults_are_filled_recursively(load):
    bp = load(TYPES + """
node_templates:
  n:
    type: my.Base
    properties:
      endpoint: {port: {number: 8080}}
      endpoints: [{host: a}, {port: {number: 1, protocol: udp}}]
      by_name: {x: {}}
      anything: {host: not a data type}
""")
    values = bp.templates["n"].values
    assert values["endpoint"] == {"host": "localhost", "port": {"number": 8080, "protocol": "tcp"}}
    assert values["endpoints"] == [
        {"host": "a", "port": {"number": 80, "protocol": "tcp"}},
        {"host": "localhost", "port": {"number": 1, "protocol": "udp"}},
    ]
    assert values["by_name"] == {"x": {"host": "localhost", "port": {"number": 80, "protocol": "tcp"}}}
    assert values["anything"] == {"host": "not a data type"}


def test_data_type_defaults_are_filled_around_run_time_values(load):
    bp = load(TYPES + """
node_templates:
  db: {type: my.Base}
  n:
    type: my.Base
    properties:
      endpoint: {host: {get_attribute: [db, ip]}}
      endpoints: [{get_attribute: [db, endpoint]}]
""")
    t = bp.templates["n"]
    assert t.values["endpoint"] == {"host": {"get_attribute": ["db", "ip"]},
                                    "port": {"number": 80, "protocol": "tcp"}}
    assert t.values["endpoints"] == [{"get_attribute": ["db", "endpoint"]}]
    assert t.runtime_paths == {"endpoint", "endpoints"}


def test_unset_optional_property_without_default_is_absent(load):
    bp = load(TYPES + "node_templates:\n  n: {type: my.Base}\n")
    assert set(bp.templates["n"].values) == {"size"}
    assert bp.node_types["my.Base"].properties["anything"].default is MISSING


# ---------------------------------------------------------------- functions


def test_get_input_and_get_property_paths_self_and_chains(load):
    bp = load(TYPES + """
inputs:
  db: {type: dict, default: {name: main, ports: [5432, 5433]}}
  size: {type: string, default: medium}
node_templates:
  a:
    type: my.Base
    properties:
      size: {get_input: size}
      anything: {port: {get_input: [db, ports, 1]}, name: {get_input: [db, name]}}
  b:
    type: my.Base
    properties:
      size: {get_property: [a, size]}
      anything: [{get_property: [a, anything, port]}, {get_property: [SELF, size]}]
  c:
    type: my.Child
    properties:
      size: {get_property: [b, size]}
      anything: {get_property: [b, anything, -1]}
""")
    assert bp.templates["a"].values["anything"] == {"port": 5433, "name": "main"}
    assert bp.templates["b"].values["anything"] == [5433, "medium"]
    assert bp.templates["c"].values == {"size": "medium", "anything": "medium"}


def test_get_property_of_a_default(load):
    bp = load(TYPES + """
node_templates:
  a: {type: my.Child}
  b: {type: my.Base, properties: {anything: {get_property: [a, size]}}}
""")
    assert bp.templates["b"].values["anything"] == "large"


def test_get_property_cycle_is_reported(problems):
    assert problems(TYPES + """
node_templates:
  a: {type: my.Base, properties: {anything: {get_property: [b, anything]}}}
  b: {type: my.Base, properties: {anything: {get_property: [SELF, size]}, size: {get_property: [a, anything]}}}
""") == ["main.yaml:29:45: get_property cycle: a.anything -> b.anything -> b.size -> a.anything"]


def test_concat_stringifies_like_yaml(load):
    bp = load(TYPES + """
inputs:
  port: {type: integer, default: 80}
node_templates:
  n:
    type: my.Base
    properties:
      anything: {concat: ["http://", {get_input: port}, "/", true, "/", 1.5, {concat: [a, b]}]}
""")
    assert bp.templates["n"].values["anything"] == "http://80/true/1.5ab"


def test_get_secret_is_deferred_and_never_a_value_in_the_plan(plan, monkeypatch):
    monkeypatch.setenv("ORCHESTRATOR_SECRET_DB_PASSWORD", "hunter2-never-shown")
    p = plan(TYPES + """
node_templates:
  n:
    type: my.Base
    properties:
      anything: {concat: ["postgres://app:", {get_secret: db_password}, "@db"]}
      size: small
outputs:
  password: {value: {get_secret: [db, password]}}
""")
    node = p.nodes["n"]
    assert node.properties["anything"] == {"concat": ["postgres://app:", {"get_secret": "db_password"}, "@db"]}
    assert node.runtime_paths == ["anything"]
    assert p.outputs == {"password": {"get_secret": ["db", "password"]}}
    assert "hunter2" not in p.to_json()


def test_get_attribute_is_kept_for_run_time(plan):
    p = plan(TYPES + """
node_templates:
  db: {type: orchestrator.nodes.Compute}
  n:
    type: my.Base
    properties:
      anything: {get_attribute: [db, ip]}
    relationships:
      - type: orchestrator.relationships.connected_to
        target: db
outputs:
  ip: {value: {get_attribute: [db, ip]}}
""")
    assert p.nodes["n"].properties["anything"] == {"get_attribute": ["db", "ip"]}
    assert p.outputs["ip"] == {"get_attribute": ["db", "ip"]}
    assert json.loads(p.to_json())["outputs"] == {"ip": {"get_attribute": ["db", "ip"]}}


@pytest.mark.parametrize(("inputs", "expected"), [
    (None, 2),
    ({"count": 0}, 0),
    (["count=3"], 3),
])
def test_instances_from_get_input(load, inputs, expected):
    bp = load("""
        inputs:
          count: {type: integer, default: 2}
        node_templates:
          vm: {type: orchestrator.nodes.Compute, instances: {get_input: count}}
    """, inputs)
    assert bp.templates["vm"].instances == expected


# ---------------------------------------------------------------- YAML 1.2 and inputs as text


def test_yaml_1_2_scalars(load):
    bp = load("""
        inputs:
          a: {default: yes}
          b: {default: no}
          c: {default: 0x1F}
          d: {default: 2001-01-01}
          e: {default: "on"}
          f: {default: ~}
          g: {default: 1e3}
          h: {default: 010}
        node_types:
          my.T:
            derived_from: orchestrator.nodes.Root
            properties:
              on: {type: string, default: off}
        node_templates:
          n: {type: my.T}
    """)
    assert bp.input_values == {"a": "yes", "b": "no", "c": 31, "d": "2001-01-01", "e": "on", "f": None,
                               "g": 1000.0, "h": 10}
    assert bp.templates["n"].values == {"on": "off"}


@pytest.mark.parametrize(("text", "expected"), [
    ("yes", "yes"), ("true", True), ("3", 3), ("0x10", 16), ("1.5", 1.5), ("[a, 1]", ["a", 1]),
    ("{k: v}", {"k": "v"}), ("", ""), ("[broken", "[broken"),
])
def test_key_value_inputs_read_as_yaml_1_2(load, text, expected):
    bp = load("inputs:\n  x: {required: false}\n", [f"x={text}"])
    assert bp.input_values["x"] == expected


def test_string_input_keeps_the_text_verbatim(load):
    bp = load("inputs:\n  x: {type: string}\n", ["x=007", "x=0x10"])
    assert bp.input_values["x"] == "0x10"


def test_inputs_file_and_key_value_pairs_combine(write, load):
    write("in.yaml", "port: 8080\nname: from-file\n")
    bp = load("""
        inputs:
          port: {type: integer}
          name: {type: string}
          debug: {type: boolean, default: false}
    """, ["in.yaml", "name=cli;debug=true"])
    assert bp.input_values == {"port": 8080, "name": "cli", "debug": True}


# ---------------------------------------------------------------- fast and slow paths


def test_fast_and_slow_paths_load_the_same_blueprint(write, pm):
    path = write("main.yaml", TYPES + """
inputs:
  n: {type: integer, default: 2}
  flags: {type: dict, default: {a: yes, b: true, c: 0o17, d: .inf, e: null, f: "1"}}
node_templates:
  a:
    type: my.Child
    instances: {get_input: n}
    properties:
      endpoint: {port: {number: 0x50}}
      anything: {get_input: flags}
  b:
    type: my.Base
    properties:
      anything: {concat: [{get_property: [a, size]}, "-", {get_attribute: [a, ip]}]}
    relationships:
      - {type: orchestrator.relationships.connected_to, target: a}
outputs:
  x: {value: {get_property: [a, endpoint, port]}}
""")
    fast = loader._load(path, {}, pm.type_sources, fast=True)
    slow = loader._load(path, {}, pm.type_sources, fast=False)
    for name in fast.templates:
        assert fast.templates[name].values == slow.templates[name].values
        assert fast.templates[name].instances == slow.templates[name].instances
    assert fast.input_values == slow.input_values
    assert {k: o.value for k, o in fast.outputs.items()} == {k: o.value for k, o in slow.outputs.items()}
    assert fast.input_values["flags"] == {"a": "yes", "b": True, "c": 15, "d": float("inf"), "e": None, "f": "1"}


def test_plain_scalar_uses_the_fast_parser_rules():
    assert [yaml_source.plain_scalar(t) for t in ("yes", "on", "0x1F", "1_000", "~", "12:30")] == [
        "yes", "on", 31, 1000, None, "12:30"]


@pytest.mark.parametrize(("where", "step", "expected"), [
    ("property 'a'", ".b", "property 'a.b'"),
    ("node template 'web': property 'env'", ".A", "node template 'web': property 'env.A'"),
    ("node type 'x': default of property 'p'", "[0]", "node type 'x': default of property 'p[0]'"),
    ("input 'env' of operation 'exec'", ".A", "input 'env.A' of operation 'exec'"),
    ("value", "[1]", "value[1]"),
])
def test_a_nested_value_is_named_by_its_path_in_one_quote(where, step, expected):
    from orchestrator.dsl.schema import nested

    assert nested(where, step) == expected
