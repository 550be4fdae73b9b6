"""``orchestrator plan``: numbered waves of operations, as text and as JSON."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import orchestrator.cli.common
from orchestrator import hookimpl
from orchestrator.cli import cli
from orchestrator.plugins import get_plugin_manager


class DemoPlugin:
    """Owns demo.Server and demo.connects; implements create, start and establish."""

    __name__ = "demo"

    @hookimpl
    def register_types(self) -> dict[str, Any]:
        return {
            "node_types": {"demo.Server": {"derived_from": "orchestrator.nodes.Compute"}},
            "relationships": {"demo.connects": {"derived_from": "orchestrator.relationships.connected_to"}},
        }

    @hookimpl
    def create(self, ctx: Any) -> None: ...

    @hookimpl
    def start(self, ctx: Any) -> None: ...

    @hookimpl
    def establish(self, ctx: Any) -> None: ...


BLUEPRINT = """
node_templates:
  vm:
    type: demo.Server
    instances: 2
  db:
    type: orchestrator.nodes.Root
    relationships:
      - {type: orchestrator.relationships.contained_in, target: vm}
  app:
    type: demo.Server
    relationships:
      - {type: demo.connects, target: db}
"""


@pytest.fixture
def blueprint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(orchestrator.cli.common, "get_plugin_manager",
                        lambda: get_plugin_manager([DemoPlugin()], entry_points=False))
    (tmp_path / "small.yaml").write_text(textwrap.dedent(BLUEPRINT))
    return "small.yaml"


def test_plan_text(blueprint: str) -> None:
    result = CliRunner().invoke(cli, ["plan", blueprint])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    assert result.stdout == textwrap.dedent("""\
        Plan for small.yaml: 5 node instances, 4 relationships, 3 waves

        wave 1
          vm_0  demo.Server  create, start
          vm_1  demo.Server  create, start

        wave 2
          db_0  orchestrator.nodes.Root  (nothing to run)
          db_1  orchestrator.nodes.Root  (nothing to run)

        wave 3
          app_0  demo.Server  create, start, establish(db_0), establish(db_1)
    """)


def test_plan_json(blueprint: str) -> None:
    result = CliRunner().invoke(cli, ["plan", "--json", blueprint])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["instances"], data["relationships"]) == (5, 4)
    assert [[i["instance"] for i in wave] for wave in data["waves"]] == [
        ["vm_0", "vm_1"], ["db_0", "db_1"], ["app_0"],
    ]
    assert data["waves"][2][0] == {
        "instance": "app_0", "node": "app", "type": "demo.Server", "plugin": "demo",
        "depends_on": ["db_0", "db_1"], "operations": ["create", "start", "establish(db_0)", "establish(db_1)"],
    }
    assert data["waves"][1][0]["depends_on"] == ["vm_0"]
    assert data["waves"][1][0]["plugin"] == "orchestrator.builtin"


def test_plan_with_inputs_and_a_bad_input(blueprint: str, tmp_path: Path) -> None:
    (tmp_path / "small.yaml").write_text(textwrap.dedent("""
        inputs:
          count: {type: integer, default: 1}
        node_templates:
          vm: {type: demo.Server, instances: {get_input: count}}
    """))
    ok = CliRunner().invoke(cli, ["plan", blueprint, "-i", "count=3"])
    assert ok.exit_code == 0, ok.output
    assert ok.stdout.splitlines()[0] == "Plan for small.yaml: 3 node instances, 0 relationships, 1 waves"
    bad = CliRunner().invoke(cli, ["plan", blueprint, "-i", "count=three"])
    assert bad.exit_code == 2
    assert bad.stdout == ""
    assert bad.stderr.splitlines() == ["<-i>:1:7: input 'count': expected integer, got string 'three'",
                                       "1 problem found"]


def test_validate_json_gives_the_problems_as_data_too(blueprint: str, tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("node_templates:\n  a: {type: nope.Type}\n")
    result = CliRunner().invoke(cli, ["validate", "--json", "bad.yaml"])
    assert result.exit_code == 2
    data = json.loads(result.stdout)
    assert data == {"valid": False, "problems": [
        {"file": "bad.yaml", "line": 2, "column": 13, "message": "node template 'a': unknown node type 'nope.Type'"}]}
    assert "bad.yaml:2:13: node template 'a': unknown node type 'nope.Type'" in result.stderr
    good = CliRunner().invoke(cli, ["validate", "--json", blueprint])
    assert json.loads(good.stdout)["valid"] is True
