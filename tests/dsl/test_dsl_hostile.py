"""Hostile and odd blueprints: every one ends in exit 0 or 2, quickly, with ``FILE:LINE:COL`` lines.

Most cases run the real command (``python -m orchestrator validate``) in a subprocess
with a memory cap, so a crash of the Rust parser, a traceback or a memory blow-up
fails the test rather than the test run. Cases that need exact lines for a small file
live in ``corpus/`` instead.
"""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from orchestrator.dsl.limits import MAX_ALIAS_NODES, MAX_ALIASES, MAX_DEPTH
from orchestrator.dsl.problems import Problems
from orchestrator.dsl.yaml_source import parse_yaml, parse_yaml_fast

ENV = {"ORCHESTRATOR_PLUGINS": "none"}
LINE = re.compile(r"^.+:\d+:\d+: ")
MEMORY_CAP = 2 << 30  # address space of the child: a blow-up fails the case, not the machine
ROOT = "orchestrator.nodes.Root"


def _cap_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def validate(path: Path, *args: str, env: dict[str, str] | None = None) -> tuple[int, list[str]]:
    """Exit code and problem lines of the real CLI; asserts the output's shape."""
    proc = subprocess.run(
        [sys.executable, "-m", "orchestrator", "validate", path.name, *args],
        cwd=path.parent, capture_output=True, text=True, timeout=60, preexec_fn=_cap_memory,
        env={**os.environ, **ENV, **(env or {})},
    )
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert proc.returncode in (0, 2), (proc.returncode, proc.stderr[-3000:])
    lines = proc.stderr.splitlines()
    if proc.returncode == 2:
        assert re.fullmatch(r"\d+ problems? found", lines[-1]), lines[-1:]
        lines = lines[:-1]
    for line in lines:
        assert LINE.match(line), line[:300]
        assert len(line) < 1200, line[:300]
    return proc.returncode, lines


def both_paths_refuse(text: str) -> list[str]:
    """The fast path declines the text and the slow path reports problems; their lines."""
    assert parse_yaml_fast(text) == (False, None)
    problems = Problems()
    assert parse_yaml(text, "doc.yaml", problems) is None or problems
    assert problems
    return [str(p) for p in problems.items]


def template(properties: str = "", extra: str = "") -> str:
    return f"""\
node_types:
  t:
    derived_from: {ROOT}
    properties:
      p: {{required: false}}
      q: {{required: false}}
node_templates:
  a:
    type: t
{extra}    properties:
{properties}"""


# ---------------------------------------------------------------- aliases


def billion_laughs(indent: str = "        ") -> str:
    lines = [f"{indent}a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"{indent}a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_at_the_alias(tmp_path: Path) -> None:
    path = tmp_path / "bomb.yaml"
    path.write_text(template(f"      q:\n{billion_laughs()}      p: *a8\n"))
    code, lines = validate(path)
    # the aliases of a1..a4 add 83,016 nodes; the first alias of a5 (73,811 more) crosses the limit
    assert code == 2
    assert lines == [f"bomb.yaml:17:18: aliases expand to more than {MAX_ALIAS_NODES} nodes (alias '*a4' adds 73811)"]


def test_alias_bomb_both_paths() -> None:
    text = billion_laughs("")
    assert both_paths_refuse(text) == [
        f"doc.yaml:6:10: aliases expand to more than {MAX_ALIAS_NODES} nodes (alias '*a4' adds 73811)"]


def test_too_many_aliases(tmp_path: Path) -> None:
    text = "x: &x 1\nlist:\n" + "  - *x\n" * (MAX_ALIASES + 1)
    assert both_paths_refuse(text) == [f"doc.yaml:{MAX_ALIASES + 3}:5: more than {MAX_ALIASES} aliases in one document"]
    path = tmp_path / "aliases.yaml"
    path.write_text(template("      p: &x 1\n      q:\n" + "        - *x\n" * (MAX_ALIASES + 1)))
    code, lines = validate(path)
    assert code == 2 and lines[0].endswith(f"more than {MAX_ALIASES} aliases in one document")


def test_a_recursive_alias_is_refused_on_both_paths() -> None:
    # yaml_rs reads it as null, PyYAML as a list containing itself: neither is a value
    assert both_paths_refuse("p: &x [1, *x]\n") == ["doc.yaml:1:11: alias '*x' refers to a node that contains it"]


def test_what_the_slow_path_refuses_the_fast_path_refuses_too() -> None:
    """Around the expansion limit the fast path never accepts what the slow path refuses."""
    for n in range(MAX_ALIAS_NODES // 100 - 3, MAX_ALIAS_NODES // 100 + 3):
        for size in (1, 3, 100, 101):
            items = ", ".join(["x"] * (size - 2)) if size > 2 else ""
            anchor = f"[{items}]" if size > 1 else "x"
            text = f"a: &a {anchor}\nb: [{', '.join(['*a'] * (n * 100 // size))}]\n"
            problems = Problems()
            parse_yaml(text, "doc.yaml", problems)
            if problems:
                assert parse_yaml_fast(text) == (False, None), (n, size)


# ---------------------------------------------------------------- nesting


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 150, 2_000])
@pytest.mark.parametrize("style", ["flow", "block", "block-sequence", "compact-sequence"])
def test_deep_nesting_is_refused_on_both_paths(style: str, depth: int) -> None:
    levels = depth - 1  # the document's own mapping is level 1
    text = {
        "flow": "x: " + "[" * levels + "]" * levels + "\n",
        "block": "".join(" " * i + f"k{i}:\n" for i in range(levels)) + " " * levels + "v: 1\n",
        "block-sequence": "x:\n" + "".join(" " * i + "-\n" for i in range(levels - 1)) + " " * levels + "- v\n",
        "compact-sequence": "x:\n" + "- " * levels + "v\n",
    }[style]
    lines = both_paths_refuse(text)
    assert len(lines) == 1 and lines[0].endswith(f": YAML nesting deeper than {MAX_DEPTH} levels"), lines


def test_nesting_at_the_limit_is_read_alike_on_both_paths() -> None:
    text = "x: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    ok, fast = parse_yaml_fast(text)
    problems = Problems()
    assert ok and fast == parse_yaml(text, "doc.yaml", problems) and not problems


@pytest.mark.parametrize("style", ["flow", "block"])
def test_deep_property_through_the_cli(tmp_path: Path, style: str) -> None:
    path = tmp_path / "deep.yaml"
    if style == "flow":
        path.write_text(template("      p: " + "[" * 2000 + "]" * 2000 + "\n"))
        expected = "deep.yaml:11:106: YAML nesting deeper than 100 levels"  # p's list is level 5
    else:  # 20,000 levels of block nesting overflow yaml_rs's stack: it must never see them
        path.write_text(template("      p:\n" + "".join(" " * (8 + i) + "-\n" for i in range(20_000))))
        expected = "deep.yaml:108:105: YAML nesting deeper than 100 levels"
    code, lines = validate(path)
    assert (code, lines) == (2, [expected])


def test_long_get_property_chains_and_derived_from_chains(tmp_path: Path) -> None:
    n = 3_000
    types = "".join(f"  t{i}:\n    derived_from: {'t' + str(i - 1) if i else ROOT}\n" for i in range(n))
    nodes = "".join(f"  n{i}:\n    type: t{n - 1}\n    properties:\n      p: "
                    f"{'{get_property: [n' + str(i + 1) + ', p]}' if i < n - 1 else 'end'}\n" for i in range(n))
    props = f"  t{n}:\n    derived_from: t{n - 1}\n    properties:\n      p: {{required: false}}\n"
    path = tmp_path / "chains.yaml"
    path.write_text(f"node_types:\n{types}{props}node_templates:\n{nodes.replace(f'type: t{n - 1}', f'type: t{n}')}")
    code, lines = validate(path)
    assert code == 2
    assert all(line.endswith(f"get_property chain longer than {MAX_DEPTH} properties") for line in lines), lines[:3]


# ---------------------------------------------------------------- numbers, characters, echoes


@pytest.mark.parametrize("number", ["9" * 5000, "-" + "9" * 5000, "0x" + "f" * 90, "1" + "0" * 100])
def test_huge_integers_are_reported_at_the_value(tmp_path: Path, number: str) -> None:
    path = tmp_path / "big.yaml"
    path.write_text(template("      p: 1\n", extra=f"    instances: {number}\n"))
    code, lines = validate(path)
    assert code == 2
    assert lines[0] == "big.yaml:10:16: integer too large: more than 100 digits"
    assert both_paths_refuse(f"x: {number}\n") == ["doc.yaml:1:4: integer too large: more than 100 digits"]


def test_the_largest_integer_allowed() -> None:
    text = f"x: -{'9' * 100}\n"
    problems = Problems()
    assert parse_yaml(text, "d", problems) == {"x": -int("9" * 100)} and not problems
    assert parse_yaml_fast(text) == (True, {"x": -int("9" * 100)})


def test_a_long_checksum_is_read_by_the_fast_path() -> None:
    text = f"sha512: {'ab12' * 32}\nsize: 12\n{'1' * 101}: key\n"
    assert parse_yaml_fast(text) == (False, None)  # the integer key is too large
    assert parse_yaml_fast(text.replace("1" * 101, "name")) == (True, {"sha512": "ab12" * 32, "size": 12,
                                                                       "name": "key"})


@pytest.mark.parametrize(("char", "code"), [("\x00", "0000"), ("\x07", "0007"), ("\x1b", "001B"),
                                            ("\x7f", "007F"), ("\x80", "0080"), ("\ufffe", "FFFE")])
def test_control_characters_are_reported_where_they_are(tmp_path: Path, char: str, code: str) -> None:
    path = tmp_path / "ctrl.yaml"
    path.write_text(template(f"      p: ab{char}c\n"), encoding="utf-8")
    assert validate(path) == (2, [f"ctrl.yaml:11:12: YAML syntax error: control character U+{code} is not allowed"])


def test_bytes_that_are_not_utf8_are_reported_where_they_are(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(template("      p: ÿXtX\n").encode().replace(b"X", b"\xe9"))  # latin-1 é
    assert validate(path) == (2, ["latin1.yaml:11:11: file is not UTF-8 text: invalid continuation byte"])


def test_no_message_echoes_more_than_200_characters_of_input(tmp_path: Path) -> None:
    long = "x" * 1_000_000
    path = tmp_path / "long.yaml"
    path.write_text(
        f"? {long}\n: 1\n"
        "inputs:\n"
        f"  size: {{type: string, constraints: [{{valid_values: [{long}, b]}}], default: 'a{long}'}}\n"
        "node_templates:\n"
        f"  ? {long}\n"
        f"  : type: {long}\n"
        f'  ? "line\\nbreak\\u2028{long}"\n'
        f"  : type: {ROOT}\n"
        f"    instances: {{get_input: {long}}}\n"
    )
    code, lines = validate(path)
    assert code == 2 and len(lines) == 4
    for line in lines:
        assert "x" * 201 not in line
        assert len(line) < 600
    assert any("'line\\nbreak\\u2028xxx" in line for line in lines)


def test_shown_cuts_and_keeps_one_line() -> None:
    from orchestrator.dsl.problems import shown

    assert shown("a" * 300) == "a" * 199 + "…"
    assert shown("a\nb\x00") == "a\\nb\\x00"
    assert shown(10**5000) == "<integer of 16610 bits>"


# ---------------------------------------------------------------- instance counts


def instances_blueprint(web: int, per_host: int) -> str:
    return f"""\
node_templates:
  vm:
    type: orchestrator.nodes.Compute
    instances: {web}
  app:
    type: {ROOT}
    instances: {per_host}
    relationships:
      - {{type: orchestrator.relationships.contained_in, target: vm}}
"""


def test_instances_per_template_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(instances_blueprint(100_000_000, 1))
    assert validate(path) == (2, [
        "many.yaml:4:16: node template 'vm': instances 100000000 is more than the limit of 10000 per node template"
        " (set ORCHESTRATOR_MAX_INSTANCES_PER_TEMPLATE to change it)"])
    assert validate(path, env={"ORCHESTRATOR_MAX_INSTANCES_PER_TEMPLATE": "100000000",
                               "ORCHESTRATOR_MAX_INSTANCES": "300000000"})[0] == 0


def test_planned_instances_per_deployment_are_bounded(tmp_path: Path) -> None:
    path = tmp_path / "many.yaml"
    path.write_text(instances_blueprint(1_000, 200))  # 1,000 + 200,000 with contained_in replication
    assert validate(path) == (2, [
        "many.yaml:5:3: node template 'app': the deployment would have more than 100000 node instances"
        " (more than 100000 of them from this node template); set ORCHESTRATOR_MAX_INSTANCES to change the limit"])
    assert validate(path, env={"ORCHESTRATOR_MAX_INSTANCES": "201000"})[0] == 0
    assert validate(path, env={"ORCHESTRATOR_MAX_INSTANCES": "lots"}) == (2, [
        "<environment>:1:1: ORCHESTRATOR_MAX_INSTANCES must be a whole number >= 1, got 'lots'",
        "many.yaml:5:3: node template 'app': the deployment would have more than 100000 node instances"
        " (more than 100000 of them from this node template); set ORCHESTRATOR_MAX_INSTANCES to change the limit"])


def test_the_50k_node_benchmark_is_within_the_limits(tmp_path: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))
    try:
        from generate import generate
    finally:
        sys.path.pop(0)
    path = tmp_path / "flat.yaml"
    path.write_text(generate("flat", 50_000))
    code, lines = validate(path)
    assert (code, lines) == (0, [])
